import { readFileSync } from "node:fs";
import { ConfigError } from "./load.ts";
import type { Config } from "./schema.ts";

export interface TlsFiles {
  cert: string;
  key: string;
}

/** Reads the PEM pair named by the config, or undefined when TLS is off. Bad files are a ConfigError. */
export function readTls(config: Pick<Config, "tlsCert" | "tlsKey" | "privateTls">): TlsFiles | undefined {
  const { tlsCert, tlsKey } = config;
  if (tlsCert === "" && tlsKey === "") {
    if (config.privateTls) throw new ConfigError("invalid --private-tls: it needs --tls-cert and --tls-key");
    return undefined;
  }
  if (tlsCert === "" || tlsKey === "") throw new ConfigError("invalid TLS settings: --tls-cert and --tls-key go together");
  const cert = readPem("--tls-cert", tlsCert, "CERTIFICATE");
  const key = readPem("--tls-key", tlsKey, "PRIVATE KEY");
  return { cert, key };
}

function readPem(flag: string, path: string, kind: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`invalid ${flag} value ${JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`);
  }
  if (!text.includes(`-----BEGIN`) || !text.includes(kind)) {
    throw new ConfigError(`invalid ${flag} value ${JSON.stringify(path)}: not a PEM ${kind.toLowerCase()}`);
  }
  return text;
}

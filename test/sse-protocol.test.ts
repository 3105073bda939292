// The pure SSE framing (src/protocol/sse.ts): events the browser reassembles exactly, ids that are
// v2 resume logins, and the v2 texts it takes apart.

import { describe, expect, test } from "bun:test";
import { parseV2Login } from "../src/protocol/resume.ts";
import { dataLines, parseNumbered, positionId, resumeLogin, sseEvent } from "../src/protocol/sse.ts";

/** The browser's side, per the HTML specification: the data of each event in a stream. */
function eventData(stream: string): string[] {
  const out: string[] = [];
  let data: string[] = [];
  for (const line of stream.split(/\r\n|\r|\n/)) {
    if (line === "") {
      if (data.length > 0) out.push(data.join("\n"));
      data = [];
    } else if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
  }
  return out;
}

describe("events", () => {
  test("any text, line breaks of every kind included, arrives whole (CR and CRLF as LF)", () => {
    const alphabet = ["a", "é", " ", ":", "\n", "\r", "\r\n", "data: x", "id: 1", "😀", ""];
    for (let round = 0; round < 2000; round++) {
      let text = "";
      for (let i = Math.floor(Math.random() * 12); i > 0; i--) text += alphabet[Math.floor(Math.random() * alphabet.length)];
      const stream = sseEvent(undefined, dataLines(text), "E!u:1") + sseEvent(undefined, dataLines("next"), "E!u:2");
      expect(eventData(stream)).toEqual([text.replace(/\r\n|\r/g, "\n"), "next"]);
    }
  });

  test("named events carry their type; plain ones none", () => {
    expect(sseEvent("gap", dataLines("7"), "E!u:1")).toBe("event: gap\nid: E!u:1\ndata: 7\n\n");
    expect(sseEvent(undefined, dataLines("hi"), "E!u:1")).toBe("id: E!u:1\ndata: hi\n\n");
  });
});

describe("ids are resume positions", () => {
  test("an id after ID!SALT is a v2 login with the same positions, in the same order", () => {
    const positions = new Map([["7", 340], ["u", 12], ["1796369613221000", 7]]);
    const id = positionId("Zk3f9aQ1", positions);
    expect(id).toBe("Zk3f9aQ1!7:340,u:12,1796369613221000:7");
    const login = parseV2Login(resumeLogin("12!salt", id));
    expect(login?.token).toBe("12!salt");
    expect(login?.epoch).toBe("Zk3f9aQ1");
    expect([...login!.positions]).toEqual([...positions]);
  });

  test("the first id (the epoch alone) resumes nothing; anything that is not a position is ignored", () => {
    expect(parseV2Login(resumeLogin("12!salt", positionId("E", new Map())))?.positions.size).toBe(0);
    for (const junk of [null, "", "E", "E!u", "E!u:", "E!x:1", "E!u:1,", "E!u:1!2", "E F!u:1", "a".repeat(20) + "!u:99999999999999999"]) {
      expect(resumeLogin("12!salt", junk)).toBe("12!salt");
    }
  });
});

describe("v2 texts", () => {
  test("SOURCE:OFFSET!MESSAGE is taken apart; notices and anything else are not messages", () => {
    expect(parseNumbered("u:5!a!b:c")).toEqual({ source: "u", offset: 5, text: "a!b:c" });
    expect(parseNumbered("17:1!")).toEqual({ source: "17", offset: 1, text: "" });
    for (const other of ["#epoch E", "#gap u", "plain", "u:!x", ":1!x", "x:1!y", "u:1"]) expect(parseNumbered(other)).toBeUndefined();
  });
});

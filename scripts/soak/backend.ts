// One soak backend: its own users and channels (disjoint from every other backend's), random commands on
// its own control connection, and the exact expectations they imply. The connection listens, so the
// [online]/[offline] events arrive interleaved with the replies in the order things ran in the server: at
// each reply the backend knows exactly which of its browsers the server counted online, hence exactly
// who a whisper or shout reached, and what every reply must say.

import type { Random } from "../../test/random.ts";
import type { Problems } from "./problems.ts";
import { closeProblem, describeSession, finished, SoakUser, type Session, type SessionEnd } from "./users.ts";
import { messageKey, messageText, verifyUser, type Verdict } from "./verify.ts";
import { Wire } from "./wire.ts";

/** Opens and closes browser sessions (in worker processes); `onEnd` gets the worker's report. */
export interface Browsers {
  open(user: number, token: string, onEnd: (end: SessionEnd) => void): number;
  /** The browser leaves by itself once message `afterKey` has arrived (at once if it already has). */
  close(session: number, user: number, afterKey: number): void;
}

export interface BackendOptions {
  /** 1-based; the BACKEND in its messages' `BACKEND:SEQ`. */
  index: number;
  privatePort: number;
  users: number;
  channels: number;
  random: Random;
  /** Most commands awaiting their reply at once. */
  window: number;
  /** Commands per second; 0 for as many as the window allows. */
  rate: number;
  browsers: Browsers;
  problems: Problems;
}

/** Whispers held for one offline user, at most: the server's --queue (default 1000) is never reached. */
const HELD_CAP = 200;
const REPLY_WAIT_MS = 20_000;

export class Backend {
  readonly users = new Map<number, SoakUser>();
  commands = 0;
  messages = 0;
  dropped = 0;
  /** What the run exercised, for the summary. */
  readonly done = { sessions: 0, left: 0, kicks: 0, kills: 0, heldAtLogin: 0 };
  #o: BackendOptions;
  #r: Random;
  #wire!: Wire;
  /** Users commands may still name (not doomed), for random picks. */
  #choosable: SoakUser[] = [];
  #idle = new Set<SoakUser>();
  #channels: number[] = [];
  #members = new Map<number, Set<number>>();
  #dead: number[] = [];
  #seq = 0;
  /** The server's epoch, from the first [epoch] event. */
  #epoch: string | undefined;
  #reconnectAll = false;

  private constructor(options: BackendOptions) {
    this.#o = options;
    this.#r = options.random;
  }

  /** Connects, listens, makes the users and channels, and opens a browser for every user. */
  static async start(options: BackendOptions): Promise<Backend> {
    const b = new Backend(options);
    const stray = (text: string) => options.problems.add(`a reply to no command: ${text.slice(0, 80)}`);
    b.#wire = await Wire.open(options.privatePort, `backend ${options.index}`, (text) => b.#event(text), stray);
    b.#send("[listen]", (reply) => b.#expect("[listen]", reply, "[ok] listening"));
    for (let i = 0; i < options.channels; i++) b.#newChannel();
    for (let i = 0; i < options.users; i++) b.#newUser();
    await b.#wire.until(() => b.#wire.pending === 0, "setup replies", REPLY_WAIT_MS);
    return b;
  }

  /** Random commands until `until` (ms since the epoch), paced by the window and the rate. */
  async run(until: number): Promise<void> {
    const started = Date.now();
    let issued = 0;
    while (Date.now() < until) {
      if (this.#wire.pending >= this.#o.window) await this.#wire.changed(REPLY_WAIT_MS);
      else if (this.#o.rate > 0 && issued >= (this.#o.rate * (Date.now() - started)) / 1000) await Bun.sleep(2);
      else {
        this.#step();
        issued++;
      }
    }
    await this.#wire.until(() => this.#wire.pending === 0, "the last replies", REPLY_WAIT_MS);
  }

  /** Every live user online with a browser that stays: idle ones reconnect, leaving ones come back. */
  async allOnline(ms: number): Promise<void> {
    this.#reconnectAll = true;
    for (const user of this.#idle) this.#connect(user);
    this.#idle.clear();
    const back = (u: SoakUser) => !u.alive || (u.online && !u.session!.closedByClient);
    await this.#wire.until(() => [...this.users.values()].every(back), "every browser online", ms);
    this.#reconnectAll = false;
  }

  /** `[count]` and `[members]` of every channel against the model. */
  async checkChannels(): Promise<void> {
    for (const channel of this.#channels) {
      this.#count(channel);
      this.#membersOf(channel);
    }
    await this.#wire.until(() => this.#wire.pending === 0, "channel checks", REPLY_WAIT_MS);
  }

  /** Kills every user (their browsers close with 4004) and every channel, and waits for every session to end. */
  async killEverything(ms: number): Promise<void> {
    for (const user of this.users.values()) if (user.alive && !user.doomed) this.#kill(user, false);
    for (const channel of this.#channels) {
      this.#send(`[killchannel] ${channel}`, (reply) => this.#expect(`[killchannel] ${channel}`, reply, "[ok] channel killed"));
    }
    await this.#wire.until(() => this.#wire.pending === 0, "kill replies", REPLY_WAIT_MS);
    try {
      await this.#wire.until(() => [...this.users.values()].every((u) => u.sessions.every(finished)), "every session to end", ms);
    } catch (error) {
      const stuck = [...this.users.values()].flatMap((u) => u.sessions.filter((s) => !finished(s)).map((s) => describeSession(u, s)));
      throw new Error(`${(error as Error).message}; ${stuck.length} unfinished, e.g. ${stuck.slice(0, 3).join("; ")}`);
    }
  }

  /** Adds this backend's users to `verdict`, and reports wrong close codes. */
  verify(verdict: Verdict): void {
    for (const user of this.users.values()) {
      for (const s of user.sessions) {
        const problem = closeProblem(s);
        if (problem) this.#o.problems.add(problem);
        for (const text of s.end?.strange ?? []) this.#o.problems.add(`session ${s.id} got ${JSON.stringify(text.slice(0, 60))}`);
      }
      const sessions = user.sessions.map((s) => ({ id: s.id, keys: s.end?.keys ?? [], closedByClient: s.closedByClient }));
      verifyUser(user.id, user.expected, sessions, verdict);
    }
  }

  close(): void {
    this.#wire.close();
  }

  // ---- random commands ----

  #step(): void {
    const p = this.#r.next();
    const user = this.#choosable.length > 0 ? this.#r.pick(this.#choosable) : undefined;
    const channel = this.#r.pick(this.#channels);
    if (!user || p < 0.38) return void (user && user.held.length < HELD_CAP ? this.#whisper(user) : this.#shout(channel));
    if (p < 0.68) return this.#shout(channel);
    if (p < 0.78) return this.#join(channel, user);
    if (p < 0.86) return this.#leave(channel, user);
    if (p < 0.88) return this.#kick(user);
    if (p < 0.9) return this.#kill(user, true);
    if (p < 0.93) return this.#leaveBrowser(user);
    if (p < 0.96) return this.#reconnectOne();
    const check = this.#r.int(5);
    if (check === 0) return this.#count(channel);
    if (check === 1) return this.#membersOf(channel);
    if (check === 2) return this.#online(user);
    if (check === 3 && this.#dead.length > 0) return this.#online(this.#r.pick(this.#dead));
    this.#send("[ping]", (reply) => this.#expect("[ping]", reply, "[ok] pong"));
  }

  /** Returns the whisper's key. */
  #whisper(user: SoakUser): number {
    const [key, text] = this.#message();
    const payload = `[whisper] ${user.id}!${text}`;
    this.#send(payload, (reply) => {
      if (!user.alive) return this.#expect(payload, reply, `[error] no such user ${user.id}`);
      if (user.online) {
        this.#expect(payload, reply, "[ok] message sent");
        user.deliver(key);
      } else {
        this.#expect(payload, reply, "[ok] message queued");
        user.held.push(key);
      }
    });
    return key;
  }

  #shout(channel: number): void {
    const [key, text] = this.#message();
    const payload = `[shout] ${channel}!${text}`;
    this.#send(payload, (reply) => {
      this.#expect(payload, reply, "[ok] message sent");
      for (const id of this.#members.get(channel)!) {
        const member = this.users.get(id)!;
        if (member.online) member.deliver(key);
      }
    });
  }

  #join(channel: number, user: SoakUser): void {
    const payload = `[join] ${channel}!${user.id}`;
    this.#send(payload, (reply) => {
      if (!user.alive) return this.#expect(payload, reply, `[error] no such user ${user.id}`);
      this.#expect(payload, reply, "[ok] user joined");
      this.#members.get(channel)!.add(user.id);
      user.channels.add(channel);
    });
  }

  #leave(channel: number, user: SoakUser): void {
    const payload = `[leave] ${channel}!${user.id}`;
    this.#send(payload, (reply) => {
      if (!user.alive) return this.#expect(payload, reply, `[error] no such user ${user.id}`);
      this.#expect(payload, reply, "[ok] user leaved");
      this.#members.get(channel)!.delete(user.id);
      user.channels.delete(channel);
    });
  }

  #kick(user: SoakUser): void {
    const payload = `[kick] ${user.id}`;
    this.#send(payload, (reply) => {
      if (!user.alive) return this.#expect(payload, reply, `[error] no such user ${user.id}`);
      this.#expect(payload, reply, "[ok] user kicked");
      if (user.online) this.#o.problems.add(`user ${user.id} still online after [kick]`);
      this.done.kicks++;
      user.endedByServer(4005);
    });
  }

  /** `[killuser]`; with `replace`, a new user takes its place so the population stays up. */
  #kill(user: SoakUser, replace: boolean): void {
    user.doomed = true;
    this.#choosable.splice(this.#choosable.indexOf(user), 1);
    this.#idle.delete(user);
    const payload = `[killuser] ${user.id}`;
    this.#send(payload, (reply) => {
      this.#expect(payload, reply, "[ok] user killed");
      if (user.online) this.#o.problems.add(`user ${user.id} still online after [killuser]`);
      this.done.kills++;
      for (const channel of user.channels) this.#members.get(channel)!.delete(user.id);
      user.channels.clear();
      this.dropped += user.killed();
      this.#idle.delete(user);
      this.#dead.push(user.id);
    });
    if (replace) this.#newUser();
  }

  /**
   * A browser that goes away by itself (it comes back later, to held whispers). It leaves once a last whisper
   * has arrived, as a page that leaves after reading: all before it is then checked exactly, and only what
   * the server sent in the moment the browser was closing may be lost in flight.
   */
  #leaveBrowser(user: SoakUser): void {
    const s = user.session;
    if (!s || !user.online || s.closedByClient) return;
    s.closedByClient = true;
    this.done.left++;
    this.#o.browsers.close(s.id, user.id, this.#whisper(user));
  }

  #reconnectOne(): void {
    const [user] = this.#idle;
    if (!user) return;
    this.#idle.delete(user);
    this.#connect(user);
  }

  #online(user: SoakUser | number): void {
    const id = typeof user === "number" ? user : user.id;
    this.#send(`[online] ${id}`, (reply) => {
      const expected = typeof user === "number" || !user.alive ? `[error] no such user ${id}` : `[ok] ${user.online ? 1 : 0}`;
      this.#expect(`[online] ${id}`, reply, expected);
    });
  }

  #count(channel: number): void {
    this.#send(`[count] ${channel}`, (reply) => {
      const members = [...this.#members.get(channel)!];
      const online = members.filter((id) => this.users.get(id)!.online).length;
      this.#expect(`[count] ${channel}`, reply, `[ok] ${members.length}!${online}`);
    });
  }

  #membersOf(channel: number): void {
    this.#send(`[members] ${channel}`, (reply) => {
      const members = [...this.#members.get(channel)!].sort((a, b) => a - b);
      this.#expect(`[members] ${channel}`, reply, `[ok] ${members.join(",")}`);
    });
  }

  #newChannel(): void {
    this.#send("[newchannel]", (reply) => {
      const channel = Number(reply.slice(5));
      if (!reply.startsWith("[ok] ") || !Number.isSafeInteger(channel)) return this.#o.problems.add(`[newchannel] answered ${reply}`);
      this.#channels.push(channel);
      this.#members.set(channel, new Set());
    });
  }

  /** A user, off the global channel (which no backend owns), on a few of this backend's channels, then its browser. */
  #newUser(): void {
    this.#send("[newuser]", (reply) => {
      const match = /^\[ok\] (\d+)!([A-Za-z0-9_-]+)$/.exec(reply);
      if (!match) return this.#o.problems.add(`[newuser] answered ${reply}`);
      const user = new SoakUser(Number(match[1]), `${match[1]}!${match[2]}`);
      this.users.set(user.id, user);
      this.#choosable.push(user);
      this.#send(`[leave] 1!${user.id}`, (r) => this.#expect(`[leave] 1!${user.id}`, r, "[ok] user leaved"));
      for (let n = this.#r.between(1, 3); n > 0 && this.#channels.length > 0; n--) this.#join(this.#r.pick(this.#channels), user);
      this.#connect(user);
    });
  }

  #connect(user: SoakUser): void {
    const session: Session = { id: 0, user: user.id, online: false, offline: false, closedByClient: false, expectedCode: undefined, end: undefined };
    user.sessions.push(session);
    this.done.sessions++;
    session.id = this.#o.browsers.open(user.id, user.token, (end) => {
      session.end = end;
      this.#settled(user, session);
      this.#wire.wake();
    });
  }

  #send(payload: string, onReply: (reply: string) => void): void {
    this.commands++;
    this.#wire.send(payload, onReply);
  }

  #expect(payload: string, reply: string, expected: string): void {
    if (reply !== expected) this.#o.problems.add(`${payload.slice(0, 60)} answered ${reply.slice(0, 80)}, expected ${expected.slice(0, 80)}`);
  }

  #message(): [number, string] {
    this.#seq++;
    this.messages++;
    const padding = this.#r.chance(0.05) ? this.#r.int(2000) : 0;
    return [messageKey(this.#o.index, this.#seq), messageText(this.#o.index, this.#seq, padding)];
  }

  // ---- events ----

  #event(text: string): void {
    if (text.startsWith("[epoch] ")) return this.#epochIs(text.slice("[epoch] ".length));
    const match = /^\[(online|offline)\] (\d+)$/.exec(text);
    if (!match) return this.#o.problems.add(`an event that is not one: ${text.slice(0, 80)}`);
    const user = this.users.get(Number(match[2]));
    if (!user) return; // another backend's user
    if (match[1] === "online") this.done.heldAtLogin += user.held.length;
    const problem = match[1] === "online" ? user.cameOnline() : user.wentOffline();
    if (problem) this.#o.problems.add(problem);
    if (match[1] === "offline") this.#settled(user, user.session!);
  }

  /** The first [epoch] is the server's; another one means it lost every user and channel made here. */
  #epochIs(epoch: string): void {
    if (this.#epoch !== undefined && epoch !== this.#epoch) this.#o.problems.add(`the epoch changed from ${this.#epoch} to ${epoch}`);
    this.#epoch ??= epoch;
  }

  /** A session may have just finished: its user becomes idle, or reconnects at once when every browser must be back. */
  #settled(user: SoakUser, session: Session): void {
    if (session !== user.session || !user.idle || user.doomed) return;
    if (this.#reconnectAll) this.#connect(user);
    else this.#idle.add(user);
  }

}

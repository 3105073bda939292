// The logged-in browsers of this process, by user: one each with --sessions 1, up to N with more.
//
// Most users have one browser, so the oldest one of each user sits in a UserTable (as before
// --sessions existed) and only the later ones of users with several sit in a second table. A user with
// one browser costs what it cost before, and `several` tells the hot paths in one comparison whether
// any user here has more than one.

import { UserTable } from "./user-table.ts";

export class SessionTable<B> {
  /** Each online user's oldest browser. */
  readonly #first = new UserTable<B>();
  /** The later browsers of users with more than one, oldest first; never an empty array. */
  readonly #more = new UserTable<B[]>();
  #browsers = 0;

  /** Users with at least one browser here. */
  get size(): number {
    return this.#first.size;
  }

  /** Browsers here, all users together. */
  get browsers(): number {
    return this.#browsers;
  }

  /** Whether some user here has more than one browser. */
  get several(): boolean {
    return this.#more.size > 0;
  }

  has(user: number): boolean {
    return this.#first.has(user);
  }

  /** The user's oldest browser. */
  first(user: number): B | undefined {
    return this.#first.get(user);
  }

  /** The user's browsers after the oldest, oldest first; undefined when it has one or none. */
  more(user: number): readonly B[] | undefined {
    return this.#more.get(user);
  }

  count(user: number): number {
    if (!this.#first.has(user)) return 0;
    return 1 + (this.#more.get(user)?.length ?? 0);
  }

  /** Every browser of the user, oldest first (a copy: closing them while iterating is safe). */
  all(user: number): B[] {
    const first = this.#first.get(user);
    if (first === undefined) return [];
    const more = this.#more.get(user);
    return more ? [first, ...more] : [first];
  }

  /** Adds the user's newest browser. */
  add(user: number, browser: B): void {
    this.#browsers++;
    const first = this.#first.get(user);
    if (first === undefined) return void this.#first.set(user, browser);
    const more = this.#more.get(user);
    if (more) more.push(browser);
    else this.#more.set(user, [browser]);
  }

  /**
   * Removes one browser of the user (the next oldest becomes the oldest). False when it was not there.
   */
  remove(user: number, browser: B): boolean {
    const more = this.#more.get(user);
    if (this.#first.get(user) === browser) {
      if (!more) {
        this.#first.delete(user);
      } else {
        this.#first.set(user, more.shift()!);
        if (more.length === 0) this.#more.delete(user);
      }
    } else {
      const at = more?.indexOf(browser) ?? -1;
      if (!more || at < 0) return false;
      more.splice(at, 1);
      if (more.length === 0) this.#more.delete(user);
    }
    this.#browsers--;
    return true;
  }

  /** Forgets every browser of the user; returns them, oldest first. */
  removeAll(user: number): B[] {
    const all = this.all(user);
    this.#first.delete(user);
    this.#more.delete(user);
    this.#browsers -= all.length;
    return all;
  }

  /** The users with a browser here. */
  users(): IterableIterator<number> {
    return this.#first.keys();
  }

  /** The browsers of each user that has more than one here, oldest first. */
  *crowded(): IterableIterator<B[]> {
    for (const [user] of this.#more.entries()) yield this.all(user);
  }

  /** Every browser here, with its user. */
  *entries(): IterableIterator<[number, B]> {
    for (const [user, first] of this.#first.entries()) {
      yield [user, first];
      for (const browser of this.#more.get(user) ?? []) yield [user, browser];
    }
  }
}

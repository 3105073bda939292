// Everything the soak found wrong that is not a message count: wrong replies, wrong events, wrong close codes.

export class Problems {
  count = 0;
  readonly examples: string[] = [];

  add(text: string): void {
    this.count++;
    if (this.examples.length < 20) this.examples.push(text);
  }
}

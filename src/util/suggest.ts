// "Did you mean …?": the closest known name to a mistyped one, so an exit 2 points at the fix.

/**
 * The candidate nearest to `word` by edit distance (case ignored, so `Queue` finds `queue`), or
 * undefined when none is near enough to be a plausible typo: a third of the word's length, at least 2.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const wanted = word.toLowerCase();
  const limit = Math.max(2, Math.floor(wanted.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return bestDistance <= limit ? best : undefined;
}

/** ` — did you mean X?` when there is a plausible X (written as `show` writes it), else "". */
export function didYouMean(word: string, candidates: Iterable<string>, show = (name: string) => name): string {
  const match = closest(word, candidates);
  return match === undefined ? "" : ` — did you mean ${show(match)}?`;
}

/** Levenshtein distance, one row at a time: names here are short. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min(substitution, previous[j]! + 1, row[j - 1]! + 1));
    }
    previous = row;
  }
  return previous[b.length]!;
}

/**
 * Collects the problems (or warnings) found in one input, within a bound:
 * the first {@link ProblemListLimits.items} are kept, each cut to
 * {@link ProblemListLimits.itemChars}, and the rest only counted. A hostile
 * pod with 50,000 bad annotations costs the same few kilobytes of message
 * and log as one with 21; a user still learns what is wrong and how much
 * more there is.
 */

/** How much a {@link ProblemList} keeps. */
export interface ProblemListLimits {
  /** Problems listed in full; later ones are counted. */
  readonly items: number;
  /** Characters of one problem; a longer one ends with `…`. */
  readonly itemChars: number;
}

/** The admission bound: 20 × 500 characters keeps a refusal under 11 KB. */
export const DEFAULT_PROBLEM_LIMITS: ProblemListLimits = { items: 20, itemChars: 500 };

/** A bounded list of problems, in the order found. */
export class ProblemList {
  readonly #limits: ProblemListLimits;
  readonly #items: string[] = [];
  #count = 0;

  constructor(limits: ProblemListLimits = DEFAULT_PROBLEM_LIMITS) {
    this.#limits = limits;
  }

  /** Adds one problem; beyond the bound it is only counted (and its text never built, when given as a function). */
  add(text: string | (() => string)): void {
    this.#count++;
    if (this.#items.length >= this.#limits.items) return;
    const full = typeof text === "string" ? text : text();
    this.#items.push(cut(full, this.#limits.itemChars));
  }

  /** How many problems were added, listed or not. */
  get count(): number {
    return this.#count;
  }

  /** The listed problems, then `and N more` when some were only counted. */
  list(): string[] {
    const more = this.#count - this.#items.length;
    return more > 0 ? [...this.#items, `and ${String(more)} more`] : [...this.#items];
  }
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

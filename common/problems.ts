/**
 * The one collector of problems (or warnings) found in one input: the
 * admission of a pod, the webhook's settings, the sidecar's spec. Each
 * problem names what it is about, `KEY: text (got "VALUE")`, so a user can
 * act on it without reading code.
 *
 * Within a bound: the first {@link ProblemListLimits.items} are kept, each
 * cut to {@link ProblemListLimits.itemChars}, and the rest only counted. A
 * hostile pod with 50,000 bad annotations costs the same few kilobytes of
 * message and log as one with 21; a user still learns what is wrong and how
 * much more there is. Input an operator writes (settings) or the webhook
 * itself made (the spec) is listed in full ({@link UNBOUNDED_PROBLEM_LIMITS}).
 */

/** How much a {@link ProblemList} keeps. */
export interface ProblemListLimits {
  /** Problems listed in full; later ones are counted. */
  readonly items: number;
  /** Characters of one problem; a longer one ends with `…`. */
  readonly itemChars: number;
  /**
   * Characters of the key and of the value that {@link ProblemList.addFor}
   * shows; a longer one is cut there and `…` added. Unset: shown whole.
   */
  readonly quotedChars?: number;
}

/**
 * The admission bound: 20 × 500 characters keeps a refusal under 11 KB; a
 * key or value shows 100 characters (annotation keys reach 317).
 */
export const DEFAULT_PROBLEM_LIMITS: ProblemListLimits = {
  items: 20,
  itemChars: 500,
  quotedChars: 100,
};

/** No bound: every problem, whole. */
export const UNBOUNDED_PROBLEM_LIMITS: ProblemListLimits = {
  items: Number.POSITIVE_INFINITY,
  itemChars: Number.POSITIVE_INFINITY,
};

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

  /**
   * Adds `KEY: text`, or `KEY: text (got "VALUE")` when the value is given
   * (undefined: the key itself is what is wrong, or it is missing).
   * @example list.addFor("akv-injector.io/mode", "expected sidecar or init", "daemon") // akv-injector.io/mode: expected sidecar or init (got "daemon")
   */
  addFor(key: string, text: string, value?: string): void {
    this.add(() => {
      const got = value === undefined ? "" : ` (got ${JSON.stringify(this.#shorten(value))})`;
      return `${this.#shorten(key)}: ${text}${got}`;
    });
  }

  /**
   * Adds `KEY: expected EXPECTED (got "VALUE")`: {@link addFor} for the common
   * case of a value that is not what was expected (a noun phrase: `a port number`).
   */
  addExpected(key: string, expected: string, value?: string): void {
    this.addFor(key, `expected ${expected}`, value);
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

  #shorten(text: string): string {
    const max = this.#limits.quotedChars;
    return max !== undefined && text.length > max ? `${text.slice(0, max)}…` : text;
  }
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * A bound on the JSON object members of a request body, checked on the raw
 * text before `JSON.parse` builds anything.
 *
 * Why members and not bytes: the cost of parsing is in the objects built,
 * not the text. A 3 MiB review holding 190,000 one-character annotations
 * takes V8 about 20 MiB to parse (one dictionary-mode object and an
 * internalized string per key), and the apiserver sends such a pod to
 * mutating webhooks, which run before it validates the 256 KiB annotation
 * limit. No pod Kubernetes stores comes near the bound; a body over it is
 * refused without being parsed.
 */
import { AkvError, ErrorCode } from "../common/errors.ts";

/** Object members a review may hold: a pod with 40 containers of 500 environment variables each has 40,000. */
export const MAX_REVIEW_MEMBERS = 25_000;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const isJsonSpace = (b: number): boolean => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/**
 * Counts object members in JSON text fed in pieces: every `"key":` outside a
 * string, however the text is split. In JSON a quote inside a string is always
 * escaped, so a closing quote followed by a colon ends a key and nothing
 * else. Text that is not JSON is counted somehow and refused by the parser
 * after. It reads the text's UTF-16 code units as the parser will see it, so
 * a body read as a string needs no byte copy (3 MiB for the largest body):
 * the characters it looks for are ASCII, and no other code unit equals one.
 */
export class JsonMemberCounter {
  #members = 0;
  #inString = false;
  #escaped = false;
  /** A string just closed and only whitespace since: a colon now makes it a key. */
  #afterString = false;

  /** Counts the members in `chunk`, continuing from the previous chunks; returns the total so far. */
  feed(chunk: string): number {
    let inString = this.#inString;
    let escaped = this.#escaped;
    let afterString = this.#afterString;
    let members = this.#members;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk.charCodeAt(i);
      if (inString) {
        if (escaped) escaped = false;
        else if (b === BACKSLASH) escaped = true;
        else if (b === QUOTE) {
          inString = false;
          afterString = true;
        }
      } else if (b === QUOTE) {
        inString = true;
        afterString = false;
      } else if (!isJsonSpace(b)) {
        if (b === COLON && afterString) members++;
        afterString = false;
      }
    }
    this.#inString = inString;
    this.#escaped = escaped;
    this.#afterString = afterString;
    this.#members = members;
    return members;
  }
}

/**
 * Whether a body of this `Content-Length` could hold more than `max`
 * members. The shortest member, `"":0`, takes 4 bytes, so a body of at most
 * 4 × max bytes cannot, and is not counted: counting costs more than parsing
 * (30 µs against 24 µs for a 3.7 KiB pod), and a pod is 5–20 KiB. A body of
 * unknown length (chunked) is counted.
 */
export function couldExceedMembers(contentLength: string | undefined, max: number): boolean {
  const bytes = contentLength === undefined ? Number.NaN : Number(contentLength);
  return !(bytes <= 4 * max);
}

/** The refusal of a body with more than `max` members, as fastify's error handler reads it (status 400). */
export function tooManyMembers(max: number): AkvError & { statusCode: number } {
  const error = new AkvError(
    ErrorCode.BAD_ADMISSION_REVIEW,
    `the AdmissionReview has more than ${String(max)} JSON object members, more than any pod Kubernetes stores; akv-injector does not read it`,
  );
  return Object.assign(error, { statusCode: 400 });
}

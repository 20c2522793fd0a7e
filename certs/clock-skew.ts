/**
 * How far before `now` a certificate's validity starts, so a peer whose clock
 * lags a little still accepts it. On its own so the webhook's renewal
 * decisions can read it without loading node-forge, which only issuing needs.
 */
export const CLOCK_SKEW_MS = 5 * 60_000;

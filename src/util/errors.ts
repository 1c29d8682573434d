// User-facing failures: one line that names the file and what was expected, and an exit code.
// Everything below the CLI throws FcnError for a user's mistake; the CLI prints its message alone
// (no stack trace) and exits with its code. Any other exception is a bug and keeps its stack.

export class FcnError extends Error {
  /** 1 for bad input or a failed operation, 2 for usage errors. */
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'FcnError';
    this.exitCode = exitCode;
  }
}

/** A usage error (bad flag value, missing argument): exit code 2. */
export class UsageError extends FcnError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

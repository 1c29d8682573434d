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

/** Why a file could not be read, in words (the errno code names the case; the message is the fallback). */
export function readFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const why: Record<string, string> = {
    ENOENT: 'no such file',
    EISDIR: 'is a directory',
    ENOTDIR: 'a part of the path is not a directory',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EMFILE: 'too many open files',
    EIO: 'input/output error',
  };
  return (code && why[code]) ?? errorMessage(err);
}

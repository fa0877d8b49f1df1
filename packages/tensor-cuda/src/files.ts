// File checks shared by every loader: a path must name a regular file before it is opened (a
// FIFO would block `open` forever, a folder gives a bare EISDIR), and atomic writes clean up the
// temporaries a killed save left behind.
import { readdirSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** A file a loader needs is missing or is not a regular file. */
export class FileError extends Error {
  override name = "FileError";
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

function kindOf(s: ReturnType<typeof statSync>): string {
  if (!s) return "nothing";
  if (s.isDirectory()) return "a folder";
  if (s.isFIFO()) return "a named pipe (FIFO)";
  if (s.isSocket()) return "a socket";
  if (s.isCharacterDevice() || s.isBlockDevice()) return "a device";
  return "not a regular file";
}

/** Throws a FileError unless `path` is an existing regular file (symlinks are followed). Returns its size. */
export function checkedFile(path: string, what = "file"): number {
  if (typeof path !== "string" || path.length === 0) throw new TypeError(`expected a path to the ${what} (got ${String(path)})`);
  let s: ReturnType<typeof statSync>;
  try {
    s = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileError(path, code === "ENOENT" ? `no such ${what} file` : `cannot read the ${what} file (${code ?? (e as Error).message})`);
  }
  if (!s?.isFile()) throw new FileError(path, `expected the ${what} file here, found ${kindOf(s)}`);
  return s.size;
}

/** Throws a FileError unless `path` is an existing folder. */
export function checkedDir(path: string, what = "model"): void {
  if (typeof path !== "string" || path.length === 0) throw new TypeError(`expected a path to the ${what} folder (got ${String(path)})`);
  let s: ReturnType<typeof statSync>;
  try {
    s = statSync(path);
  } catch {
    throw new FileError(path, `no such ${what} folder`);
  }
  if (!s?.isDirectory()) throw new FileError(path, `expected a ${what} folder, found a file`);
}

/** The temporary name an atomic write of `target` uses: hidden, beside it, tagged with the writer's pid. */
export function temporaryPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes temporaries of `target` left by saves whose process is gone (killed mid-write): they
 * can be as large as the model. Temporaries of live processes are left alone. Returns the removed paths.
 */
export function removeStaleTemporaries(target: string): string[] {
  const dir = dirname(target);
  const prefix = `.${basename(target)}.tmp-`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number.parseInt(name.slice(prefix.length), 10);
    if (!Number.isSafeInteger(pid) || processAlive(pid)) continue;
    rmSync(join(dir, name), { force: true, recursive: true });
    removed.push(join(dir, name));
  }
  return removed;
}

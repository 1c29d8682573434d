// A restricted unpickler: an interpreter of Python's pickle opcodes that only builds data. Python
// pickles name callables (GLOBAL module.name) and call them (REDUCE, BUILD, NEWOBJ); here every
// such name must be resolved by the caller's allow-list to a JavaScript function of ours, and
// anything else is refused before a single further byte is read. Nothing in a file is ever executed.
import { FcnError } from '../util/errors.js';

/** A Python callable that the caller allowed: our own function standing in for it. */
export class PyCallable {
  constructor(
    readonly qualname: string,
    readonly call: (args: unknown[]) => unknown,
  ) {}
}

/** A Python tuple (kept apart from lists so persistent ids and arguments read as Python wrote them). */
export class PyTuple extends Array<unknown> {}

function tuple(items: unknown[]): PyTuple {
  const t = new PyTuple();
  for (const x of items) t.push(x);
  return t;
}

export interface UnpickleOptions {
  /** Used in error messages. */
  fileName: string;
  /** The stand-in for `module.name`, or undefined to refuse the file. */
  resolveGlobal: (module: string, name: string) => unknown;
  /** Resolves BINPERSID/PERSID ids (torch's storages). */
  persistentLoad?: (pid: unknown) => unknown;
  /** BUILD on objects of ours: (object, state) → handled? Maps (OrderedDict) ignore their state by default. */
  build?: (obj: unknown, state: unknown) => boolean;
}

export interface UnpickleResult {
  value: unknown;
  /** Byte offset just after STOP (legacy torch files hold several pickles back to back). */
  end: number;
}

export function refusal(fileName: string, module: string, name: string): FcnError {
  return new FcnError(
    `refusing to load ${fileName}: it references ${module}.${name}, which a PyTorch state_dict never needs (loading a checkpoint must never run code)`,
  );
}

/** Unpickles one pickle starting at `start`. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions, start = 0): UnpickleResult {
  const file = opts.fileName;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = start;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();
  const corrupt = (what: string) => new FcnError(`${file}: corrupt pickle data at byte ${pos}: ${what}`);

  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) throw corrupt(`needs ${n} more bytes, the data ends (truncated?)`);
  };
  const u8 = () => { need(1); return bytes[pos++]!; };
  const u16 = () => { need(2); const v = dv.getUint16(pos, true); pos += 2; return v; };
  const u32 = () => { need(4); const v = dv.getUint32(pos, true); pos += 4; return v; };
  const i32 = () => { need(4); const v = dv.getInt32(pos, true); pos += 4; return v; };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) throw corrupt(`length ${v} exceeds the data`);
    return Number(v);
  };
  const take = (n: number) => { need(n); const s = bytes.subarray(pos, pos + n); pos += n; return s; };
  const line = () => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0) throw corrupt('unterminated text line');
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const utf8 = (b: Uint8Array) => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      throw corrupt('string is not valid UTF-8');
    }
  };
  // push reads `stack` after its argument is evaluated (popMark() replaces the stack)
  const push = (v: unknown) => {
    stack.push(v);
  };
  const pop = () => {
    if (stack.length === 0) throw corrupt('stack underflow');
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) throw corrupt('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) throw corrupt('no MARK on the stack');
    stack = prev;
    return items;
  };
  const getMemo = (i: number) => {
    if (!memo.has(i)) throw corrupt(`memo key ${i} was never stored`);
    return memo.get(i);
  };
  const resolve = (module: string, name: string) => {
    const v = opts.resolveGlobal(module, name);
    if (v === undefined) throw refusal(file, module, name);
    return v;
  };
  const call = (fn: unknown, args: unknown) => {
    if (!(fn instanceof PyCallable)) throw corrupt(`calls ${describe(fn)}, which is not callable`);
    if (!Array.isArray(args)) throw corrupt(`arguments to ${fn.qualname} are not a tuple`);
    return fn.call(args);
  };
  const decodeLong = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const parseIntText = (s: string): number | bigint => {
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^[-+]?\d+$/.test(t)) throw corrupt(`'${s}' is not an integer`);
    const v = BigInt(t);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (items.length % 2) throw corrupt('odd number of items for a dict');
    if (!(dict instanceof Map)) throw corrupt(`SETITEM(S) on ${describe(dict)}, not a dict`);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
  };
  const appendItems = (list: unknown, items: unknown[]) => {
    if (list instanceof Set) for (const x of items) list.add(x);
    else if (Array.isArray(list) && !(list instanceof PyTuple)) list.push(...items);
    else throw corrupt(`APPEND(S) on ${describe(list)}, not a list`);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const proto = u8();
        if (proto > 5) throw corrupt(`pickle protocol ${proto} is newer than 5`);
        break;
      }
      case 0x95: u64(); break; // FRAME: a length hint only
      case 0x2e: // STOP
        if (metastack.length) throw corrupt('STOP inside an unclosed MARK');
        if (stack.length !== 1) throw corrupt(`STOP with ${stack.length} values on the stack`);
        return { value: stack[0], end: pos };
      case 0x28: metastack.push(stack); stack = []; break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP

      // integers and floats
      case 0x4a: push(i32()); break; // BININT
      case 0x4b: push(u8()); break; // BININT1
      case 0x4d: push(u16()); break; // BININT2
      case 0x8a: push(decodeLong(take(u8()))); break; // LONG1
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0) throw corrupt('negative LONG4 length');
        push(decodeLong(take(n)));
        break;
      }
      case 0x49: { // INT (text; protocol 0 spells booleans 00 / 01)
        const s = line();
        push(s === '00' ? false : s === '01' ? true : parseIntText(s));
        break;
      }
      case 0x4c: push(parseIntText(line())); break; // LONG (text)
      case 0x47: { need(8); push(dv.getFloat64(pos, false)); pos += 8; break; } // BINFLOAT (big-endian)
      case 0x46: { // FLOAT (text)
        const s = line();
        const v = Number(s);
        if (Number.isNaN(v) && !/nan/i.test(s)) throw corrupt(`'${s}' is not a float`);
        push(v);
        break;
      }
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE

      // strings and bytes
      case 0x58: push(utf8(take(u32()))); break; // BINUNICODE
      case 0x8c: push(utf8(take(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: push(utf8(take(u64()))); break; // BINUNICODE8
      case 0x56: // UNICODE: raw-unicode-escape (latin-1 bytes, \uXXXX and \UXXXXXXXX escapes)
        push(line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, u: string | undefined, w: string | undefined) =>
          String.fromCodePoint(parseInt(u ?? w!, 16))));
        break;
      case 0x54: { const n = i32(); push(new TextDecoder('latin1').decode(take(n))); break; } // BINSTRING
      case 0x55: push(new TextDecoder('latin1').decode(take(u8()))); break; // SHORT_BINSTRING
      case 0x53: { // STRING (quoted repr)
        const s = line();
        const q = s[0];
        if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) throw corrupt('STRING is not quoted');
        push(s.slice(1, -1));
        break;
      }
      case 0x42: push(take(u32()).slice()); break; // BINBYTES
      case 0x43: push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: push(take(u64()).slice()); break; // BINBYTES8
      case 0x96: push(take(u64()).slice()); break; // BYTEARRAY8

      // containers
      case 0x29: push(tuple([])); break; // EMPTY_TUPLE
      case 0x74: push(tuple(popMark())); break; // TUPLE
      case 0x85: { const a = pop(); push(tuple([a])); break; } // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); push(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); push(tuple([a, b, c])); break; } // TUPLE3
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x6c: push([...popMark()]); break; // LIST
      case 0x61: { const x = pop(); appendItems(top(), [x]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x7d: push(new Map()); break; // EMPTY_DICT
      case 0x64: { const m = new Map(); setItems(m, popMark()); push(m); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x8f: push(new Set()); break; // EMPTY_SET
      case 0x90: { const items = popMark(); appendItems(top(), items); break; } // ADDITEMS
      case 0x91: push(new Set(popMark())); break; // FROZENSET

      // memo
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x70: memo.set(Number(parseIntText(line())), top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: push(getMemo(u8())); break; // BINGET
      case 0x6a: push(getMemo(u32())); break; // LONG_BINGET
      case 0x67: push(getMemo(Number(parseIntText(line())))); break; // GET

      // names and calls: only what the allow-list resolves
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        push(resolve(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw corrupt('STACK_GLOBAL needs two strings');
        push(resolve(module, name));
        break;
      }
      case 0x69: { // INST: module and class name inline, arguments since MARK
        const module = line();
        const name = line();
        const cls = resolve(module, name);
        push(call(cls, popMark()));
        break;
      }
      case 0x6f: { // OBJ: class and arguments since MARK
        const items = popMark();
        if (items.length === 0) throw corrupt('OBJ without a class');
        push(call(items[0], items.slice(1)));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); push(call(fn, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); push(call(cls, args)); break; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size > 0) throw corrupt('NEWOBJ_EX with keyword arguments');
        push(call(cls, args));
        break;
      }
      case 0x62: { // BUILD: obj.__setstate__(state)
        const state = pop();
        const obj = top();
        if (opts.build?.(obj, state)) break;
        // OrderedDict state holds only attributes such as a state_dict's `_metadata` (versions)
        if (obj instanceof Map) break;
        throw corrupt(`BUILD on ${describe(obj)}`);
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) throw corrupt('persistent id without a loader');
        push(opts.persistentLoad(pid));
        break;
      }
      case 0x50: { // PERSID
        const pid = line();
        if (!opts.persistentLoad) throw corrupt('persistent id without a loader');
        push(opts.persistentLoad(pid));
        break;
      }
      case 0x82: case 0x83: case 0x84: // EXT1/2/4 name globals through copyreg's registry
        throw new FcnError(`refusing to load ${file}: it names a global through the copyreg extension registry (opcode 0x${op.toString(16)}), which a PyTorch state_dict never needs`);
      default:
        pos = at;
        throw corrupt(`unsupported opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

function describe(x: unknown): string {
  if (x === null) return 'None';
  if (x instanceof PyCallable) return x.qualname;
  if (x instanceof Map) return 'a dict';
  if (Array.isArray(x)) return x instanceof PyTuple ? 'a tuple' : 'a list';
  if (typeof x === 'object') return `an object (${(x as object).constructor?.name ?? 'unknown'})`;
  return `a ${typeof x}`;
}

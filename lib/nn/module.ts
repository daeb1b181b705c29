/**
 * `Module`: the base class of every layer and model. A module's state is its attributes: a `Tensor`
 * attribute is a parameter, a `Module` attribute a child, an array of modules (or tensors) numbered
 * children (`layers.0`, `layers.1`, ...). So the dotted attribute path of a parameter is its name and its
 * checkpoint key (`backbone.layers.3.mixer.in_proj.weight`), with no name table to keep in step — which
 * is why the attributes of the Mamba modules carry the checkpoint's snake_case names. A tensor reachable
 * under two paths (tied weights) is one parameter, named by the first path in attribute order.
 *
 * Tensors are immutable, so changing a parameter means replacing the tensor in every slot that holds it
 * (`replaceParameter`, used by `to`, `loadStateDict` and optimizers); tied slots stay tied. Parameters
 * live outside `tidy()` scopes and are freed by `dispose()`.
 *
 * @example
 * ```ts
 * class Affine extends Module {
 *   weight = keep(randn([4, 3], { seed: 1 })).requiresGrad_();
 *   forward(x: Tensor): Tensor { return ops.matmul(x, this.weight, { transB: true }); }   // (..., 3) -> (..., 4)
 * }
 * const m = new Affine();
 * const h = m.registerForwardHook((mod, inputs, out) => console.log((out as Tensor).shape));
 * m.forward(x); h.remove();
 * console.log(Object.keys(m.stateDict()));   // ['weight']
 * m.dispose();
 * ```
 */
import { checkDType, checkDevice, DType, Device } from '../dtype';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { collectTensors } from '../memory';
import { untrack } from '../scope';
import { Tensor } from '../tensor';

/** A forward hook: receives the module, its forward arguments and output; a returned value replaces the output. */
export type ForwardHook = (module: Module, inputs: unknown[], output: unknown) => unknown;

/** What `registerForwardHook` returns. */
export interface HookHandle {
  /** Unregisters the hook (idempotent). */
  remove(): void;
}

/** Options of `loadStateDict`. */
export interface LoadStateDictOptions {
  /** Throw on missing or unexpected keys. Default true. Shape mismatches always throw. */
  strict?: boolean;
}

/** What `loadStateDict` did not match (both empty when strict). */
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** A state dict: parameter name -> tensor, as a plain object or a Map. */
export type StateDict = Record<string, Tensor> | Map<string, Tensor>;

/** One place that holds a tensor: `owner[key]` (key is an attribute name or an array index). */
interface Slot {
  path: string;
  owner: Record<string | number, unknown>;
  key: string | number;
}

const FLOAT_DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];

/** Base class of layers and models; see the file comment for how parameters are found. */
export abstract class Module {
  /** Whether the module is in training mode (`train()` / `eval()`); Mamba itself has no mode-dependent layer. */
  training = true;
  #hooks: ForwardHook[] = [];

  constructor() {
    // Subclasses define `forward` on their prototype; an own, non-enumerable wrapper runs the hooks
    // after it, so `module.forward(x)` behaves like PyTorch's `module(x)`.
    const inner = (this as unknown as { forward: (...a: unknown[]) => unknown }).forward;
    if (typeof inner === 'function') {
      Object.defineProperty(this, 'forward', {
        value: (...args: unknown[]) => this.#runForward(inner, args),
        enumerable: false,
        writable: true,
        configurable: true,
      });
    }
  }

  #runForward(inner: (...a: unknown[]) => unknown, args: unknown[]): unknown {
    let out = inner.apply(this, args);
    for (const hook of [...this.#hooks]) {
      const r = hook(this, args, out);
      if (r === undefined) continue;
      // The replaced output's tensors have no other owner: free those the replacement does not contain.
      const kept = collectTensors(r);
      for (const t of collectTensors(out)) if (!kept.has(t)) t.dispose();
      out = r;
    }
    return out;
  }

  /**
   * Calls `hook(module, inputs, output)` after every `forward` of this module; a value it returns replaces
   * the output (and the tensors of the replaced output that it does not contain are disposed). Tensors the
   * hook sees are disposed when the forward is done with them: keep a copy with `keep(t.detach())`.
   */
  registerForwardHook(hook: ForwardHook): HookHandle {
    if (typeof hook !== 'function')
      throw new ArgumentError("registerForwardHook: expected a function for argument 'hook'", { fn: 'registerForwardHook', arg: 'hook' });
    this.#hooks.push(hook);
    return {
      remove: () => {
        const i = this.#hooks.indexOf(hook);
        if (i >= 0) this.#hooks.splice(i, 1);
      },
    };
  }

  /** Every slot holding a tensor, depth-first in attribute order, with its dotted path (duplicates included). */
  #slots(prefix = '', out: Slot[] = [], seen: Set<Module> = new Set()): Slot[] {
    if (seen.has(this)) return out;
    seen.add(this);
    const self = this as unknown as Record<string, unknown>;
    for (const key of Object.keys(self)) {
      const v = self[key];
      const path = prefix + key;
      if (v instanceof Tensor) out.push({ path, owner: self, key });
      else if (v instanceof Module) v.#slots(path + '.', out, seen);
      else if (Array.isArray(v)) {
        v.forEach((item, i) => {
          if (item instanceof Tensor) out.push({ path: `${path}.${i}`, owner: v as unknown as Record<number, unknown>, key: i });
          else if (item instanceof Module) item.#slots(`${path}.${i}.`, out, seen);
        });
      }
    }
    return out;
  }

  /** The child modules with their dotted paths ('' for this one), depth-first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    const self = this as unknown as Record<string, unknown>;
    const join = (k: string) => (prefix ? `${prefix}.${k}` : k);
    for (const key of Object.keys(self)) {
      const v = self[key];
      if (v instanceof Module) out.push(...v.namedModules(join(key)));
      else if (Array.isArray(v)) v.forEach((m, i) => m instanceof Module && out.push(...m.namedModules(join(`${key}.${i}`))));
    }
    return out;
  }

  /** Parameters with their dotted names, each tensor once (tied weights under their first name). */
  namedParameters(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const s of this.#slots()) {
      const t = s.owner[s.key] as Tensor;
      if (seen.has(t)) continue;
      seen.add(t);
      out.push([s.path, t]);
    }
    return out;
  }

  /** The parameters themselves (not copies), each once; what an optimizer updates. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** The number of parameter elements (tied weights counted once). */
  numParameters(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /**
   * name -> tensor for every parameter: the module's own tensors (as PyTorch's state_dict), so do not
   * dispose them; take `t.detach()` for a handle of your own. Tied weights appear once.
   */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedParameters());
  }

  /** The names another path can reach each parameter by (tied weights): alias -> primary name. */
  #aliases(): Map<string, string> {
    const primary = new Map<Tensor, string>();
    const out = new Map<string, string>();
    for (const s of this.#slots()) {
      const t = s.owner[s.key] as Tensor;
      const p = primary.get(t);
      if (p === undefined) primary.set(t, s.path);
      else out.set(s.path, p);
    }
    return out;
  }

  /**
   * Replaces parameters by the tensors of `stateDict` (converted to each parameter's device and dtype; the
   * caller keeps its tensors). A key naming a tied alias (e.g. `lm_head.weight`) is accepted when its shape
   * matches, and used only when the primary key is absent. Everything is checked before anything changes:
   * a shape mismatch throws ShapeError naming the key; with `strict` (the default) missing or unexpected
   * keys throw ArgumentError listing them.
   */
  loadStateDict(stateDict: StateDict, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const fn = 'loadStateDict';
    if (stateDict === null || typeof stateDict !== 'object')
      throw new ArgumentError(`${fn}: expected an object or Map of tensors for argument 'stateDict'`, { fn, arg: 'stateDict' });
    const strict = options.strict ?? true;
    if (typeof strict !== 'boolean') throw new ArgumentError(`${fn}: expected a boolean for option 'strict'`, { fn, arg: 'strict' });
    const entries = stateDict instanceof Map ? [...stateDict.entries()] : Object.entries(stateDict);
    const params = new Map(this.namedParameters());
    const aliases = this.#aliases();
    const given = new Map<string, Tensor>();
    const unexpectedKeys: string[] = [];
    for (const [rawKey, t] of entries) {
      if (!(t instanceof Tensor)) throw new ArgumentError(`${fn}: entry '${rawKey}' is not a Tensor`, { fn, arg: rawKey });
      const key = params.has(rawKey) ? rawKey : aliases.get(rawKey);
      if (key === undefined) {
        unexpectedKeys.push(rawKey);
        continue;
      }
      const p = params.get(key) as Tensor;
      if (t.rank !== p.rank || t.shape.some((s, i) => s !== p.shape[i]))
        throw new ShapeError(`${fn}: expected shape [${p.shape.join(', ')}] for '${rawKey}' but received [${t.shape.join(', ')}]`, { fn, arg: rawKey });
      if (t.dtype === 'int32') throw new DTypeError(`${fn}: expected a float tensor for '${rawKey}' but received int32`, { fn, arg: rawKey });
      if (rawKey === key || !given.has(key)) given.set(key, t);
    }
    const missingKeys = [...params.keys()].filter((k) => !given.has(k));
    if (strict && (missingKeys.length || unexpectedKeys.length)) {
      const parts = [];
      if (missingKeys.length) parts.push(`missing keys: ${missingKeys.join(', ')}`);
      if (unexpectedKeys.length) parts.push(`unexpected keys: ${unexpectedKeys.join(', ')}`);
      throw new ArgumentError(`${fn}: the state dict does not match the module (${parts.join('; ')})`, { fn, arg: 'stateDict' });
    }
    for (const [key, t] of given) {
      const p = params.get(key) as Tensor;
      const moved = t.device === p.device ? t.detach() : t.to(p.device);
      const typed = moved.dtype === p.dtype ? moved : moved.cast(p.dtype);
      if (typed !== moved) moved.dispose();
      this.replaceParameter(key, typed);
    }
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Puts `tensor` in place of the parameter `name` in every slot that holds it (tied weights stay tied),
   * keeping its `requiresGrad`, and disposes the old tensor. The module takes ownership of `tensor`.
   */
  replaceParameter(name: string, tensor: Tensor): void {
    const fn = 'replaceParameter';
    if (!(tensor instanceof Tensor)) throw new ArgumentError(`${fn}: expected a Tensor for argument 'tensor'`, { fn, arg: 'tensor' });
    const slots = this.#slots();
    const first = slots.find((s) => s.path === name);
    if (!first) throw new ArgumentError(`${fn}: the module has no parameter '${name}'`, { fn, arg: 'name' });
    const old = first.owner[first.key] as Tensor;
    if (old === tensor) return;
    const requiresGrad = old.requiresGrad;
    const leaf = tensor.isLeaf ? tensor : tensor.detach();
    untrack(leaf);
    if (leaf.requiresGrad !== requiresGrad) leaf.requiresGrad = requiresGrad;
    for (const s of slots) if (s.owner[s.key] === old) s.owner[s.key] = leaf;
    if (leaf !== tensor) tensor.dispose();
    old.dispose();
  }

  /** Names (relative to this module) of parameters that `to(dtype)` leaves in float32. */
  protected float32Parameters(): readonly string[] {
    return [];
  }

  /**
   * Moves every parameter to `device`, or converts the float parameters to `dtype` (except those a module
   * keeps in float32, e.g. the Mamba mixer's A_log, D and dt_proj.bias, which the scan takes in float32).
   * Old tensors are disposed; tied weights stay tied. Returns this.
   */
  to(target: Device | DType | 'cuda:0'): this {
    const fn = 'to';
    const isDtype = (FLOAT_DTYPES as readonly string[]).includes(target) || target === 'int32';
    if (isDtype) {
      const dtype = checkDType(target, fn, 'target');
      if (dtype === 'int32') throw new DTypeError(`${fn}: parameters must have a float dtype, not int32`, { fn, arg: 'target' });
      const keep = new Set<string>();
      for (const [prefix, m] of this.namedModules()) for (const n of m.float32Parameters()) keep.add(prefix ? `${prefix}.${n}` : n);
      for (const [name, t] of this.namedParameters()) {
        const want = keep.has(name) ? 'float32' : dtype;
        if (t.dtype !== want) this.replaceParameter(name, t.cast(want));
      }
    } else {
      const device = checkDevice(target, fn, 'target');
      for (const [name, t] of this.namedParameters()) if (t.device !== device) this.replaceParameter(name, t.to(device));
    }
    return this;
  }

  /** Sets training mode on this module and every child. Returns this. */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw new ArgumentError("train: expected a boolean for argument 'mode'", { fn: 'train', arg: 'mode' });
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Sets evaluation mode (`train(false)`). Returns this. */
  eval(): this {
    return this.train(false);
  }

  /** Drops the accumulated gradient of every parameter. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Frees every parameter (and its gradient); the module cannot be used afterwards. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }

  /** Same as dispose(), so `using model = ...` frees the parameters at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

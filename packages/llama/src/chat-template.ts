// Chat templates rendered with limits. A template comes from a file someone else made (GGUF
// metadata, tokenizer_config.json, chat_template.jinja), so it is run the way transformers runs
// one in a sandboxed jinja environment: @huggingface/jinja's interpreter, with a bounded `range`,
// a cap on evaluation steps, on every string's and list's size and on time. A template that
// breaks a limit, or does not parse, is a ChatTemplateError naming where it came from.
import { Environment, Interpreter, parse, tokenize } from "@huggingface/jinja";

export class ChatTemplateError extends Error {
  override name = "ChatTemplateError";
}

export interface ChatTemplateLimits {
  /** Longest string any expression may produce, the output included (characters). */
  maxOutputLength: number;
  /** Largest list any expression may produce, `range()` included. */
  maxListLength: number;
  /** Evaluation steps (statements and expressions) per render. */
  maxSteps: number;
  /** Wall time per render, in milliseconds. */
  maxMilliseconds: number;
}

/** Generous for real templates (a 100-turn chat renders in a few thousand steps), small for attacks. */
export const DEFAULT_CHAT_TEMPLATE_LIMITS: ChatTemplateLimits = {
  maxOutputLength: 4_000_000,
  maxListLength: 100_000,
  maxSteps: 1_000_000,
  maxMilliseconds: 2_000,
};

class LimitExceeded extends Error {}

interface RuntimeValue {
  type: string;
  value: unknown;
}

type Evaluate = (this: unknown, node: unknown, environment: Environment) => RuntimeValue;

/**
 * An interpreter that counts steps and checks the size of every value it makes. The hooks
 * wrap `evaluate` (every statement and expression) and `evaluateBlock` (which concatenates its
 * statements' outputs without evaluate seeing the total) on the instance: the typings mark them
 * private, but the interpreter calls them through `this`, so instance wrappers see every call.
 */
function limitedInterpreter(env: Environment, limits: ChatTemplateLimits): Interpreter {
  const interpreter = new Interpreter(env);
  const hooks = interpreter as unknown as { evaluate: Evaluate; evaluateBlock: Evaluate };
  const evaluate = hooks.evaluate;
  const evaluateBlock = hooks.evaluateBlock;
  const deadline = Date.now() + limits.maxMilliseconds;
  let steps = 0;
  const check = (v: RuntimeValue | undefined): RuntimeValue => {
    if (v && typeof v.value === "string" && v.value.length > limits.maxOutputLength)
      throw new LimitExceeded(`a string longer than ${limits.maxOutputLength} characters`);
    if (v && Array.isArray(v.value) && v.value.length > limits.maxListLength) throw new LimitExceeded(`a list longer than ${limits.maxListLength} items`);
    return v as RuntimeValue;
  };
  hooks.evaluate = function (node, environment) {
    if (++steps > limits.maxSteps) throw new LimitExceeded(`more than ${limits.maxSteps} evaluation steps`);
    if ((steps & 1023) === 0 && Date.now() > deadline) throw new LimitExceeded(`more than ${limits.maxMilliseconds} ms`);
    return check(evaluate.call(this, node, environment));
  };
  hooks.evaluateBlock = function (statements, environment) {
    return check(evaluateBlock.call(this, statements, environment));
  };
  return interpreter;
}

/** A parsed chat template; `origin` (a file path, "GGUF metadata"...) is named in every error. */
export class ChatTemplate {
  private readonly program: ReturnType<typeof parse>;
  constructor(
    readonly source: string,
    readonly origin: string,
    readonly limits: ChatTemplateLimits = DEFAULT_CHAT_TEMPLATE_LIMITS,
  ) {
    if (typeof source !== "string") throw new ChatTemplateError(`${origin}: the chat template must be a string (got ${typeof source})`);
    if (source.length > limits.maxOutputLength)
      throw new ChatTemplateError(`${origin}: the chat template is ${source.length} characters, more than ${limits.maxOutputLength}`);
    try {
      this.program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
    } catch (e) {
      throw new ChatTemplateError(`${origin}: the chat template is invalid (${(e as Error).message})`);
    }
  }

  /** Renders with `context` as the template's variables (messages, add_generation_prompt, ...). */
  render(context: Record<string, unknown>): string {
    const env = new Environment();
    // the globals @huggingface/jinja's Template sets, with a bounded range()
    for (const [k, v] of [
      ["false", false],
      ["true", true],
      ["none", null],
      ["True", true],
      ["False", false],
      ["None", null],
    ] as const)
      env.set(k, v);
    env.set("raise_exception", (message: unknown) => {
      throw new ChatTemplateError(`${this.origin}: the chat template raised an exception: ${String(message)}`);
    });
    env.set("strftime_now", (format: unknown) => strftimeNow(String(format)));
    env.set("range", (start: number, stop?: number, step = 1) => this.range(start, stop, step));
    for (const [k, v] of Object.entries(context)) env.set(k, v);
    try {
      const out = limitedInterpreter(env, this.limits).run(this.program) as RuntimeValue;
      return String(out.value);
    } catch (e) {
      if (e instanceof ChatTemplateError) throw e;
      if (e instanceof LimitExceeded) throw new ChatTemplateError(`${this.origin}: the chat template exceeded a rendering limit (${e.message})`);
      if (e instanceof RangeError) throw new ChatTemplateError(`${this.origin}: the chat template failed to render (${e.message})`);
      throw new ChatTemplateError(`${this.origin}: the chat template failed to render (${(e as Error).message})`);
    }
  }

  private range(start: number, stop: number | undefined, step: number): number[] {
    if (stop === undefined) [start, stop] = [0, start];
    for (const v of [start, stop, step]) if (!Number.isSafeInteger(v)) throw new ChatTemplateError(`${this.origin}: range() takes integers (got ${v})`);
    if (step === 0) throw new ChatTemplateError(`${this.origin}: range() step must not be zero`);
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (n > this.limits.maxListLength) throw new LimitExceeded(`range() of ${n} items, more than ${this.limits.maxListLength}`);
    return Array.from({ length: n }, (_, i) => start + i * step);
  }
}

/** The subset of strftime chat templates use (Llama 3.1's `strftime_now("%d %b %Y")`). */
function strftimeNow(format: string): string {
  const d = new Date();
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const pad = (n: number) => String(n).padStart(2, "0");
  return format.replace(/%([dbBYmHMS%])/g, (_, c: string) => {
    switch (c) {
      case "d":
        return pad(d.getDate());
      case "b":
        return months[d.getMonth()]!;
      case "B":
        return d.toLocaleString("en-US", { month: "long" });
      case "Y":
        return String(d.getFullYear());
      case "m":
        return pad(d.getMonth() + 1);
      case "H":
        return pad(d.getHours());
      case "M":
        return pad(d.getMinutes());
      case "S":
        return pad(d.getSeconds());
      default:
        return "%";
    }
  });
}

/**
 * Reading configuration from an environment map. Configuration is input: a bad value throws a
 * `ConfigError` whose message is one line naming the variable, which entry points print and exit on.
 */
import * as v from "valibot";
import { parseDuration } from "./duration.ts";

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function present(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === "" ? undefined : raw.trim();
}

export function envString(env: Env, name: string, fallback: string): string;
export function envString(env: Env, name: string): string | undefined;
export function envString(env: Env, name: string, fallback?: string): string | undefined {
  return present(env, name) ?? fallback;
}

export function envInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = present(env, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw) || n < min || n > max) {
    throw new ConfigError(`${name}: expected an integer from ${min} to ${max}, got '${raw}'`);
  }
  return n;
}

export function envDuration(env: Env, name: string, fallbackMs: number): number {
  const raw = present(env, name);
  if (raw === undefined) return fallbackMs;
  const ms = parseDuration(raw);
  if (ms === null || ms <= 0) {
    throw new ConfigError(`${name}: expected a positive duration like 90s, 15m or 1h, got '${raw}'`);
  }
  return ms;
}

export function envChoice<const T extends string>(env: Env, name: string, choices: readonly T[], fallback: T): T {
  const raw = present(env, name);
  if (raw === undefined) return fallback;
  if (!(choices as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name}: expected one of ${choices.join(", ")}, got '${raw}'`);
  }
  return raw as T;
}

export function envFlag(env: Env, name: string, fallback: boolean): boolean {
  const raw = present(env, name);
  if (raw === undefined) return fallback;
  if (["on", "true", "1", "yes"].includes(raw.toLowerCase())) return true;
  if (["off", "false", "0", "no"].includes(raw.toLowerCase())) return false;
  throw new ConfigError(`${name}: expected on or off, got '${raw}'`);
}

/** Validate a value with a valibot schema; on failure the ConfigError names the variable. */
export function envParse<S extends v.GenericSchema>(name: string, schema: S, value: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, value);
  if (!result.success) {
    throw new ConfigError(`${name}: ${result.issues[0]?.message ?? "invalid value"}`);
  }
  return result.output;
}

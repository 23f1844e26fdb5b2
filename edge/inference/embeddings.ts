/**
 * `POST /v1/embeddings` in OpenAI's shape. Workers AI serves embedding models (`@cf/baai/bge-*`) on the same
 * OpenAI-compatible base as chat. A request for `encoding_format: "base64"` (the openai client's default) is
 * sent upstream as floats and encoded here, so it works whatever the upstream supports.
 */
import * as v from "valibot";

const NonEmptyText = v.pipe(v.string(), v.nonEmpty("input must not be empty"));

export const EmbeddingRequest = v.looseObject({
  model: v.pipe(v.string("model is required"), v.nonEmpty("model is required")),
  input: v.union([
    NonEmptyText,
    v.pipe(
      v.array(NonEmptyText),
      v.nonEmpty("input must not be empty"),
      v.maxLength(2048, "input holds at most 2048 items"),
    ),
    v.pipe(v.array(v.number()), v.nonEmpty("input must not be empty")),
    v.pipe(v.array(v.array(v.number())), v.nonEmpty("input must not be empty")),
  ], "input must be a string, an array of strings, or arrays of token ids"),
  encoding_format: v.optional(v.picklist(["float", "base64"], "encoding_format must be float or base64")),
  dimensions: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1, "dimensions must be a positive integer"))),
});
export type EmbeddingRequest = v.InferOutput<typeof EmbeddingRequest>;

/** The body to send upstream: as given, except that SAM does the base64 encoding itself. */
export function upstreamEmbeddingBody(text: string, json: Record<string, unknown>, base64: boolean): string {
  if (!base64) return text;
  const { encoding_format: _, ...rest } = json;
  return JSON.stringify(rest);
}

/** Little-endian float32 bytes in base64, as OpenAI encodes an embedding. */
function toBase64(vector: number[]): string {
  const bytes = new Uint8Array(new Float32Array(vector).buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** The upstream's answer for the client, and the prompt tokens it reports (null when it reports none). */
export function finishEmbeddings(raw: string, base64: boolean): { body: string; promptTokens: number | null } {
  let parsed: { data?: { embedding?: unknown }[]; usage?: { prompt_tokens?: unknown } };
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { body: raw, promptTokens: null };
  }
  const tokens = parsed?.usage?.prompt_tokens;
  const promptTokens = typeof tokens === "number" ? tokens : null;
  if (!base64 || !Array.isArray(parsed.data)) return { body: raw, promptTokens };
  for (const item of parsed.data) {
    if (Array.isArray(item?.embedding)) item.embedding = toBase64(item.embedding as number[]);
  }
  return { body: JSON.stringify(parsed), promptTokens };
}

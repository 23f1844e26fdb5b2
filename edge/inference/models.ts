/**
 * The curated model catalogue served by `GET /v1/models`. Workers AI's REST API lists no models in OpenAI's
 * shape, so SAM keeps its own list of text-generation models with their capabilities (tool calling,
 * context window) — the ones a coding agent can actually drive.
 */
export type CatalogueModel = { id: string; tools: boolean; contextLength: number; ownedBy: string };

export const WORKERS_AI_MODELS: readonly CatalogueModel[] = [
  { id: "@cf/meta/llama-3.3-70b-instruct-fp8-fast", tools: true, contextLength: 24_000, ownedBy: "meta" },
  { id: "@cf/meta/llama-4-scout-17b-16e-instruct", tools: true, contextLength: 131_000, ownedBy: "meta" },
  { id: "@cf/meta/llama-3.1-8b-instruct-fast", tools: true, contextLength: 128_000, ownedBy: "meta" },
  { id: "@cf/openai/gpt-oss-120b", tools: true, contextLength: 128_000, ownedBy: "openai" },
  { id: "@cf/openai/gpt-oss-20b", tools: true, contextLength: 128_000, ownedBy: "openai" },
  { id: "@cf/qwen/qwen3-30b-a3b-fp8", tools: true, contextLength: 32_768, ownedBy: "qwen" },
  { id: "@cf/qwen/qwen2.5-coder-32b-instruct", tools: false, contextLength: 32_768, ownedBy: "qwen" },
  { id: "@cf/mistralai/mistral-small-3.1-24b-instruct", tools: true, contextLength: 128_000, ownedBy: "mistralai" },
  { id: "@hf/nousresearch/hermes-2-pro-mistral-7b", tools: true, contextLength: 24_000, ownedBy: "nousresearch" },
  { id: "@cf/google/gemma-3-12b-it", tools: false, contextLength: 80_000, ownedBy: "google" },
];

/** Workers AI's embedding models on the same OpenAI-compatible base (`POST /v1/embeddings`). */
export type EmbeddingModel = { id: string; dimensions: number; contextLength: number; ownedBy: string };

export const WORKERS_AI_EMBEDDING_MODELS: readonly EmbeddingModel[] = [
  { id: "@cf/baai/bge-small-en-v1.5", dimensions: 384, contextLength: 512, ownedBy: "baai" },
  { id: "@cf/baai/bge-base-en-v1.5", dimensions: 768, contextLength: 512, ownedBy: "baai" },
  { id: "@cf/baai/bge-large-en-v1.5", dimensions: 1024, contextLength: 512, ownedBy: "baai" },
  { id: "@cf/baai/bge-m3", dimensions: 1024, contextLength: 8192, ownedBy: "baai" },
];

/** The catalogue entry for `id`, or undefined for a model SAM knows nothing about (a generic upstream's). */
export function catalogueModel(id: string): CatalogueModel | undefined {
  return WORKERS_AI_MODELS.find((m) => m.id === id);
}

/** One entry of `GET /v1/models`: OpenAI's model object plus SAM's capability fields. */
export function modelObject(m: { id: string }, created: number) {
  const known = catalogueModel(m.id);
  const embedding = known ? undefined : WORKERS_AI_EMBEDDING_MODELS.find((e) => e.id === m.id);
  const capabilities = known
    ? { tools: known.tools }
    : embedding
    ? { tools: false, embeddings: true, dimensions: embedding.dimensions }
    : null;
  return {
    id: m.id,
    object: "model" as const,
    created,
    owned_by: known?.ownedBy ?? embedding?.ownedBy ?? "upstream",
    capabilities,
    context_length: known?.contextLength ?? embedding?.contextLength ?? null,
  };
}

/**
 * The Responses API request as SAM checks it before spending an upstream call. Only the fields the bridge
 * uses are validated; the API keeps growing, so unknown fields are accepted and ignored. Input items and
 * tools are checked per type (`parseItem`, `check`), so an error names the exact item and field.
 */
import * as v from "valibot";
import { HttpError } from "../../../shared/errors.ts";

const Text = v.string("text must be a string");

const TextPart = v.looseObject({ type: v.picklist(["input_text", "output_text"]), text: Text });
const ImagePart = v.looseObject({
  type: v.literal("input_image"),
  image_url: v.optional(v.nullable(v.string("image_url must be a string"))),
  detail: v.optional(v.nullable(v.string())),
});
const RefusalPart = v.looseObject({ type: v.literal("refusal"), refusal: Text });
/** Parts SAM reads; any other part type (files, audio) is dropped and named in the response header. */
export const ContentPart = v.variant("type", [TextPart, ImagePart, RefusalPart]);
export type ContentPart = v.InferOutput<typeof ContentPart>;

const Content = v.union(
  [v.string(), v.array(v.looseObject({ type: v.string("content parts need a string type") }))],
  "content must be a string or an array of content parts",
);

export const MessageItem = v.looseObject({
  type: v.optional(v.literal("message")),
  role: v.picklist(["user", "assistant", "system", "developer"], "role must be user, assistant, system or developer"),
  content: Content,
});

export const FunctionCallItem = v.looseObject({
  type: v.literal("function_call"),
  call_id: v.pipe(v.string("call_id is required"), v.nonEmpty("call_id is required")),
  name: v.pipe(v.string("name is required"), v.nonEmpty("name is required")),
  arguments: v.string("arguments must be a JSON string"),
  namespace: v.optional(v.nullable(v.string())),
});

export const FunctionCallOutputItem = v.looseObject({
  type: v.literal("function_call_output"),
  call_id: v.pipe(v.string("call_id is required"), v.nonEmpty("call_id is required")),
  output: Content,
});

export type MessageItem = v.InferOutput<typeof MessageItem>;
export type FunctionCallItem = v.InferOutput<typeof FunctionCallItem>;
export type FunctionCallOutputItem = v.InferOutput<typeof FunctionCallOutputItem>;
export type InputItem =
  | ({ kind: "message" } & MessageItem)
  | ({ kind: "function_call" } & FunctionCallItem)
  | ({ kind: "function_call_output" } & FunctionCallOutputItem)
  | { kind: "other"; type: string };

const Item = v.looseObject(
  { type: v.optional(v.string("an input item's type must be a string")) },
  "input items must be objects",
);

const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const FunctionName = v.pipe(
  v.string("name is required"),
  v.regex(FUNCTION_NAME, "name must be 1-64 letters, digits, _ or -"),
);

/** A JSON Schema for a function's parameters: an object schema, as chat-completions upstreams require. */
const Parameters = v.looseObject({
  type: v.literal("object", 'parameters must be a JSON Schema with type "object"'),
  properties: v.optional(v.record(v.string(), v.looseObject({}, "each property must be a JSON Schema object"))),
  required: v.optional(v.array(v.string(), "required must be an array of property names")),
});

export const FunctionTool = v.looseObject({
  type: v.literal("function"),
  name: FunctionName,
  description: v.optional(v.nullable(v.string())),
  parameters: v.optional(v.nullable(Parameters)),
});
export type FunctionTool = v.InferOutput<typeof FunctionTool>;

export const NamespaceTool = v.looseObject({
  type: v.literal("namespace"),
  name: FunctionName,
  description: v.optional(v.nullable(v.string())),
  tools: v.array(
    v.looseObject({ type: v.string("a namespace's tools need a string type") }),
    "a namespace needs a tools array",
  ),
});

const Tool = v.looseObject({ type: v.string("every tool needs a string type") }, "tools must be objects");

const ToolChoice = v.union([
  v.picklist(["none", "auto", "required"]),
  v.looseObject({ type: v.literal("function"), name: v.string("tool_choice.name is required") }),
  v.looseObject({
    type: v.literal("allowed_tools"),
    mode: v.picklist(["auto", "required"]),
    tools: v.array(v.looseObject({ type: v.string(), name: v.optional(v.string()) })),
  }),
  v.looseObject({ type: v.string() }),
], "tool_choice must be none, auto, required or a tool choice object");

const TextFormat = v.variant("type", [
  v.looseObject({ type: v.literal("text") }),
  v.looseObject({ type: v.literal("json_object") }),
  v.looseObject({
    type: v.literal("json_schema"),
    name: v.optional(v.string()),
    schema: v.looseObject({}, "text.format.schema must be a JSON Schema object"),
    strict: v.optional(v.nullable(v.boolean())),
  }),
], "text.format.type must be text, json_object or json_schema");

export const ResponsesRequest = v.looseObject({
  model: v.pipe(v.string("model is required"), v.nonEmpty("model is required")),
  input: v.union([v.string(), v.array(Item)], "input must be a string or an array of input items"),
  instructions: v.optional(v.nullable(v.string("instructions must be a string"))),
  previous_response_id: v.optional(
    v.nullable(v.pipe(v.string(), v.nonEmpty("previous_response_id must not be empty"))),
  ),
  stream: v.optional(v.nullable(v.boolean("stream must be true or false"))),
  store: v.optional(v.nullable(v.boolean("store must be true or false"))),
  background: v.optional(v.nullable(v.boolean("background must be true or false"))),
  tools: v.optional(v.nullable(v.array(Tool, "tools must be an array"))),
  tool_choice: v.optional(v.nullable(ToolChoice)),
  parallel_tool_calls: v.optional(v.nullable(v.boolean("parallel_tool_calls must be true or false"))),
  max_output_tokens: v.optional(
    v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1, "max_output_tokens must be at least 1"))),
  ),
  temperature: v.optional(v.nullable(v.number("temperature must be a number"))),
  top_p: v.optional(v.nullable(v.number("top_p must be a number"))),
  reasoning: v.optional(
    v.nullable(
      v.looseObject({ effort: v.optional(v.nullable(v.string())), summary: v.optional(v.nullable(v.string())) }),
    ),
  ),
  include: v.optional(v.nullable(v.array(v.string(), "include must be an array of strings"))),
  text: v.optional(v.nullable(v.looseObject({ format: v.optional(v.nullable(TextFormat)) }))),
  metadata: v.optional(v.nullable(v.record(v.string(), v.string()))),
  conversation: v.optional(v.unknown()),
  prompt: v.optional(v.unknown()),
  user: v.optional(v.nullable(v.string())),
});
export type ResponsesRequest = v.InferOutput<typeof ResponsesRequest>;

/** `raw` checked against `schema`, or a 400 that names the field under `where` (e.g. `input[2].call_id`). */
export function check<S extends v.GenericSchema>(schema: S, raw: unknown, where: string): v.InferOutput<S> {
  const result = v.safeParse(schema, raw);
  if (result.success) return result.output;
  const issue = result.issues[0];
  const path = v.getDotPath(issue);
  const field = `${where}${path ? `.${path}` : ""}`;
  // valibot's message for a missing key names only types; say which field is missing.
  const message = issue.input === undefined && path ? `${field} is required` : `${field}: ${issue.message}`;
  throw new HttpError(400, message, { code: "invalid_request" });
}

/** One input item checked against the schema of its type; other types are left for the caller to drop. */
export function parseItem(raw: v.InferOutput<typeof Item>, i: number): InputItem {
  const type = raw.type ?? "message";
  const where = `input[${i}]`;
  if (type === "message") return { kind: "message", ...check(MessageItem, raw, where) };
  if (type === "function_call") return { kind: "function_call", ...check(FunctionCallItem, raw, where) };
  if (type === "function_call_output") {
    return { kind: "function_call_output", ...check(FunctionCallOutputItem, raw, where) };
  }
  return { kind: "other", type };
}

const PART_TYPES: ReadonlySet<string> = new Set(["input_text", "output_text", "input_image", "refusal"]);

/** A content part SAM reads (checked), or null for a type it drops (files, audio). */
export function readPart(raw: { type: string }, where: string): ContentPart | null {
  return PART_TYPES.has(raw.type) ? check(ContentPart, raw, where) : null;
}

/**
 * The chat-completion request as SAM checks it before spending an upstream call: the fields a user gets
 * wrong (messages, roles, tools, model) are validated; every other OpenAI parameter passes through as sent.
 */
import * as v from "valibot";

const ContentPart = v.looseObject({ type: v.string("content parts need a string type") });
const Content = v.union(
  [v.string(), v.array(ContentPart)],
  "content must be a string or an array of content parts",
);

const ToolCall = v.looseObject({
  id: v.string(),
  type: v.optional(v.literal("function")),
  function: v.looseObject({ name: v.string(), arguments: v.string("arguments must be a JSON string") }),
});

// The commonest roles first: valibot tries the options in order, and every option tried before the match
// builds an issue with its message (≈ 0.5 µs each, per message of a long conversation).
const Message = v.variant("role", [
  v.looseObject({ role: v.literal("user"), content: Content }),
  v.looseObject({
    role: v.literal("assistant"),
    content: v.optional(v.nullable(Content)),
    tool_calls: v.optional(v.array(ToolCall)),
  }),
  v.looseObject({
    role: v.literal("tool"),
    content: Content,
    tool_call_id: v.string("a tool message needs tool_call_id"),
  }),
  v.looseObject({ role: v.picklist(["system", "developer"]), content: Content }),
], (issue) => `role must be one of system, developer, user, assistant, tool (got ${JSON.stringify(issue.input)})`);

const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** A JSON Schema for a function's parameters: an object schema, as OpenAI requires. */
const Parameters = v.pipe(
  v.looseObject({
    type: v.literal("object", 'parameters must be a JSON Schema with type "object"'),
    properties: v.optional(v.record(v.string(), v.looseObject({}, "each property must be a JSON Schema object"))),
    required: v.optional(v.array(v.string(), "required must be an array of property names")),
  }),
);

const Tool = v.looseObject({
  type: v.literal("function", 'only tools of type "function" are supported'),
  function: v.looseObject({
    name: v.pipe(v.string(), v.regex(FUNCTION_NAME, "name must be 1-64 letters, digits, _ or -")),
    description: v.optional(v.string()),
    parameters: v.optional(Parameters),
  }),
});

export const ChatRequest = v.looseObject({
  model: v.pipe(v.string("model is required"), v.nonEmpty("model is required")),
  messages: v.pipe(
    v.array(Message, "messages is required: an array of {role, content}"),
    v.nonEmpty("messages must not be empty"),
  ),
  stream: v.optional(v.nullable(v.boolean("stream must be true or false"))),
  tools: v.optional(v.nullable(v.array(Tool, "tools must be an array"))),
  tool_choice: v.optional(v.nullable(v.union([
    v.picklist(["none", "auto", "required"]),
    v.looseObject({ type: v.literal("function"), function: v.looseObject({ name: v.string() }) }),
  ], 'tool_choice must be none, auto, required or {type: "function", function: {name}}'))),
  stream_options: v.optional(v.nullable(v.looseObject({ include_usage: v.optional(v.boolean()) }))),
});
export type ChatRequest = v.InferOutput<typeof ChatRequest>;

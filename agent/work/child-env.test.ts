import { expect, test } from "bun:test";
import { taskEnv } from "./child-env.ts";

test("a task's environment has the task's inputs and none of the agent's secrets", () => {
  const env = taskEnv(
    {
      PATH: "/usr/bin",
      HOME: "/root",
      SAM_NODE_TOKEN: "samnode_x",
      SAM_AGENT_TOKEN: "samagent_y",
      SAM_TOKEN_FILE: "/etc/sam/tokens",
      SAM_CONTROL_PLANE_URL: "https://edge",
      HCLOUD_TOKEN: "h",
      CF_API_TOKEN: "c",
      OPENAI_API_KEY: "agent-own-key",
    },
    {
      taskId: "t1",
      prompt: "fix it",
      agent: { type: "builtin" },
      inference: { baseUrl: "http://edge/v1", token: "samtask_z" },
      timeoutMs: 1000,
    },
    "m1",
  );
  expect(env).toMatchObject({
    PATH: "/usr/bin",
    HOME: "/root",
    SAM_TASK_ID: "t1",
    SAM_TASK_PROMPT: "fix it",
    OPENAI_BASE_URL: "http://edge/v1",
    OPENAI_API_KEY: "samtask_z",
    OPENAI_MODEL: "m1",
  });
  for (
    const name of [
      "SAM_NODE_TOKEN",
      "SAM_AGENT_TOKEN",
      "SAM_TOKEN_FILE",
      "SAM_CONTROL_PLANE_URL",
      "HCLOUD_TOKEN",
      "CF_API_TOKEN",
    ]
  ) {
    expect(env[name]).toBeUndefined();
  }
  expect(Object.values(env).join(" ")).not.toContain("samnode_x");
});

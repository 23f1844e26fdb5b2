/** The version both the edge and the agent report. Bumped with package.json. */
export const SAM_VERSION = "0.1.0";

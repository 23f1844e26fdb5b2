/** Child process of crash.test.ts: records events as fast as it can and acknowledges each committed batch on stdout. */
import { EventStore } from "../store.ts";

const store = new EventStore(process.argv[2]!, {
  nodeId: "crash-node",
  onCommit: (lastId) => process.stdout.write(`committed ${lastId}\n`),
});
let n = 0;
function burst() {
  for (let i = 0; i < 500; i++) store.record({ type: "task.output", message: `line ${n++}`, taskId: "t1", detail: { n } });
  setImmediate(burst);
}
burst();

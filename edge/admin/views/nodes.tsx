/** The nodes list: what each node is doing and how it feels, at a glance. */
import type { NodeView } from "../../../shared/wire/api.ts";
import { formatAge, formatBytes, formatDuration, formatPercent } from "../format.ts";
import { Badge, Layout } from "./layout.tsx";

export function NodesPage(
  { base, nodes, nextCursor, now }: { base: string; nodes: NodeView[]; nextCursor: string | null; now: number },
) {
  return (
    <Layout title="Nodes" base={base}>
      <h1>Nodes</h1>
      {nodes.length === 0
        ? <p class="muted">No nodes yet. A node is provisioned when a task needs one.</p>
        : (
          <div class="scroll">
            <table class="list" id="nodes">
              <thead>
                <tr>
                  <th>Node</th>
                  <th>Status</th>
                  <th>Health</th>
                  <th>Provider</th>
                  <th>Age</th>
                  <th>Tasks</th>
                  <th>CPU</th>
                  <th>Memory</th>
                  <th>Disk</th>
                </tr>
              </thead>
              <tbody>
                {nodes.map((n) => {
                  const m = n.lastMetrics;
                  return (
                    <tr data-node={n.id}>
                      <td>
                        <a href={`${base}/nodes/${encodeURIComponent(n.id)}`}>{n.id}</a>
                      </td>
                      <td>
                        <Badge value={n.status} />
                      </td>
                      <td>
                        <Badge value={n.health} />{" "}
                        <span class="muted">
                          {n.lastHeartbeatAt === null ? "no heartbeat" : formatAge(n.lastHeartbeatAt, now)}
                        </span>
                      </td>
                      <td>{n.provider}</td>
                      <td>{formatDuration(now - n.createdAt)}</td>
                      <td>{n.activeTasks.length}</td>
                      <td>{m ? formatPercent(m.cpuPercent) : "—"}</td>
                      <td>{m ? `${formatBytes(m.memUsedBytes)} / ${formatBytes(m.memTotalBytes)}` : "—"}</td>
                      <td>{m ? `${formatBytes(m.disk.usedBytes)} / ${formatBytes(m.disk.totalBytes)}` : "—"}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      {nextCursor && (
        <p>
          <a href={`${base}/nodes?cursor=${encodeURIComponent(nextCursor)}`}>Next page →</a>
        </p>
      )}
    </Layout>
  );
}

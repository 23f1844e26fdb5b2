/**
 * Who owns a workspace. A task that runs as the unprivileged sandbox uid must be able to write its workspace,
 * so the tree is handed to that uid before each sandboxed command; once the task's processes are gone it is
 * taken back, so the agent's own git (diff, delivery) works on a repository it owns — git refuses one owned
 * by another user. Symlinks are changed themselves (lchown), never followed: a task's link cannot make the
 * agent chown a file outside the workspace.
 */
import { nodeFsPromises, nodePath } from "../../runtime/node.ts";

/** Give every entry under `dir` (and `dir`) to `uid:gid`; entries already theirs are left alone. */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  const fsp = nodeFsPromises();
  const visit = async (p: string): Promise<void> => {
    let st;
    try {
      st = await fsp.lstat(p);
    } catch {
      return; // gone meanwhile
    }
    if (st.uid !== uid || st.gid !== gid) await fsp.lchown(p, uid, gid);
    if (!st.isDirectory()) return;
    for (const name of await fsp.readdir(p)) await visit(nodePath().join(p, name));
  };
  await visit(dir);
}

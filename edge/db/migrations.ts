/** The edge's schema, in order. Append only: a migration that has shipped is never edited. */
import type { Migration } from "./migrate.ts";

export const MIGRATIONS: Migration[] = [
  {
    id: "0001-meta",
    statements: [
      "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
  },
  {
    id: "0002-control-plane",
    statements: [
      // API keys: only the SHA-256 of the secret is kept; `prefix` lets an operator recognise a key.
      `CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        rate_limit_per_minute INTEGER,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      )`,
      `CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        status_reason TEXT,
        status_at INTEGER NOT NULL,
        provider TEXT NOT NULL,
        provider_server_id TEXT,
        ipv4 TEXT,
        owner_key_id TEXT,
        node_token_hash TEXT NOT NULL UNIQUE,
        agent_token TEXT NOT NULL,
        slots INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        ready_at INTEGER,
        last_heartbeat_at INTEGER,
        idle_since INTEGER,
        agent_version TEXT,
        agent_url TEXT,
        active_tasks TEXT NOT NULL DEFAULT '[]',
        boot_timeline TEXT,
        last_metrics TEXT,
        capabilities TEXT
      )`,
      "CREATE INDEX nodes_status ON nodes (status, owner_key_id)",
      `CREATE TABLE node_timings (
        node_id TEXT NOT NULL,
        name TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (node_id, name)
      )`,
      `CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        key_id TEXT NOT NULL,
        idempotency_key TEXT,
        request_hash TEXT NOT NULL,
        status TEXT NOT NULL,
        status_at INTEGER NOT NULL,
        deadline_at INTEGER,
        deadline_timer TEXT,
        prompt TEXT NOT NULL,
        repo_url TEXT,
        repo_branch TEXT,
        repo_credential TEXT,
        agent TEXT NOT NULL,
        model TEXT,
        labels TEXT NOT NULL,
        node_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        result TEXT,
        error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (key_id, idempotency_key)
      )`,
      "CREATE INDEX tasks_status ON tasks (status, deadline_at)",
      "CREATE INDEX tasks_node ON tasks (node_id, status)",
      "CREATE INDEX tasks_key ON tasks (key_id, seq)",
      // Status changes and log lines in one ordered sequence; `agent_seq` de-duplicates retried log batches.
      `CREATE TABLE task_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        type TEXT NOT NULL,
        status TEXT,
        stream TEXT,
        message TEXT NOT NULL,
        agent_seq INTEGER
      )`,
      "CREATE INDEX task_events_task ON task_events (task_id, id)",
      "CREATE UNIQUE INDEX task_events_seq ON task_events (task_id, agent_seq) WHERE agent_seq IS NOT NULL",
      // Task inference tokens (hash only), one per dispatch attempt; valid while the task is not terminal.
      `CREATE TABLE task_tokens (
        token_hash TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        created_at INTEGER NOT NULL
      )`,
    ],
  },
  {
    // How many tasks hold a slot on each node, kept by triggers in the very statement that moves a task on or
    // off a node (so in its transaction, whoever writes it: any instance, any code path). Placement compares
    // it with `slots` instead of counting the node's tasks each time, which grew with the tasks a node held.
    // The status list is `ON_NODE_SQL` written out: a shipped migration's text never changes.
    id: "0003-node-task-count",
    statements: [
      "ALTER TABLE nodes ADD COLUMN tasks_on_node INTEGER NOT NULL DEFAULT 0",
      `UPDATE nodes SET tasks_on_node = (SELECT COUNT(*) FROM tasks t WHERE t.node_id = nodes.id
        AND t.status IN ('provisioning','waiting_for_agent','dispatched','running'))`,
      `CREATE TRIGGER tasks_on_node_insert AFTER INSERT ON tasks
        WHEN NEW.node_id IS NOT NULL AND NEW.status IN ('provisioning','waiting_for_agent','dispatched','running')
        BEGIN UPDATE nodes SET tasks_on_node = tasks_on_node + 1 WHERE id = NEW.node_id; END`,
      `CREATE TRIGGER tasks_on_node_update AFTER UPDATE OF status, node_id ON tasks
        WHEN OLD.node_id IS NOT NEW.node_id
          OR (OLD.status IN ('provisioning','waiting_for_agent','dispatched','running'))
            <> (NEW.status IN ('provisioning','waiting_for_agent','dispatched','running'))
        BEGIN
          UPDATE nodes SET tasks_on_node = tasks_on_node - 1
            WHERE id = OLD.node_id AND OLD.status IN ('provisioning','waiting_for_agent','dispatched','running');
          UPDATE nodes SET tasks_on_node = tasks_on_node + 1
            WHERE id = NEW.node_id AND NEW.status IN ('provisioning','waiting_for_agent','dispatched','running');
        END`,
      `CREATE TRIGGER tasks_on_node_delete AFTER DELETE ON tasks
        WHEN OLD.node_id IS NOT NULL AND OLD.status IN ('provisioning','waiting_for_agent','dispatched','running')
        BEGIN UPDATE nodes SET tasks_on_node = tasks_on_node - 1 WHERE id = OLD.node_id; END`,
    ],
  },
  {
    // The certificate an `https` agent reported in its ready callback: the edge's calls to that agent trust it
    // and nothing else (edge/nodes/pinned-fetch.ts).
    id: "0004-agent-tls-cert",
    statements: ["ALTER TABLE nodes ADD COLUMN agent_tls_cert TEXT"],
  },
  {
    // An ended task never needs its repo credential again; the edge now drops it at the end, this drops the
    // ones older edges kept. (Agent tokens and live tasks' credentials are sealed at start: secret-box.ts.)
    id: "0010-drop-ended-credentials",
    statements: ["UPDATE tasks SET repo_credential = NULL WHERE status IN ('succeeded','failed','cancelled')"],
  },
  {
    // Admin page sessions: the cookie carries a random secret, stored here only as its SHA-256.
    id: "0011-admin-sessions",
    statements: [
      `CREATE TABLE admin_sessions (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        user_agent TEXT,
        revoked_at INTEGER
      )`,
    ],
  },
  {
    // A task's delivery request (`repo.push`, JSON): the branch, commit message and pull request it asks for.
    id: "0020-task-repo-push",
    statements: ["ALTER TABLE tasks ADD COLUMN repo_push TEXT"],
  },
  {
    // A node's idle time is kept by the same triggers that count its tasks: taking a slot clears `idle_since`,
    // giving back the last one sets it to the moment the task moved. Placement and the result callback then
    // write nothing to the node themselves (one statement less per task), and no path can forget it.
    id: "0050-node-idle-by-trigger",
    statements: [
      "DROP TRIGGER tasks_on_node_insert",
      "DROP TRIGGER tasks_on_node_update",
      "DROP TRIGGER tasks_on_node_delete",
      `CREATE TRIGGER tasks_on_node_insert AFTER INSERT ON tasks
        WHEN NEW.node_id IS NOT NULL AND NEW.status IN ('provisioning','waiting_for_agent','dispatched','running')
        BEGIN UPDATE nodes SET tasks_on_node = tasks_on_node + 1, idle_since = NULL WHERE id = NEW.node_id; END`,
      `CREATE TRIGGER tasks_on_node_update AFTER UPDATE OF status, node_id ON tasks
        WHEN OLD.node_id IS NOT NEW.node_id
          OR (OLD.status IN ('provisioning','waiting_for_agent','dispatched','running'))
            <> (NEW.status IN ('provisioning','waiting_for_agent','dispatched','running'))
        BEGIN
          UPDATE nodes SET tasks_on_node = tasks_on_node - 1,
              idle_since = CASE WHEN tasks_on_node = 1 THEN NEW.updated_at ELSE idle_since END
            WHERE id = OLD.node_id AND OLD.status IN ('provisioning','waiting_for_agent','dispatched','running');
          UPDATE nodes SET tasks_on_node = tasks_on_node + 1, idle_since = NULL
            WHERE id = NEW.node_id AND NEW.status IN ('provisioning','waiting_for_agent','dispatched','running');
        END`,
      `CREATE TRIGGER tasks_on_node_delete AFTER DELETE ON tasks
        WHEN OLD.node_id IS NOT NULL AND OLD.status IN ('provisioning','waiting_for_agent','dispatched','running')
        BEGIN
          UPDATE nodes SET tasks_on_node = tasks_on_node - 1,
              idle_since = CASE WHEN tasks_on_node = 1 THEN OLD.updated_at ELSE idle_since END
            WHERE id = OLD.node_id;
        END`,
      // What the node cap counts (every node that has or may get a server) and the retention sweeps' scans.
      "CREATE INDEX nodes_status_at ON nodes (status, status_at)",
      "CREATE INDEX tasks_ended ON tasks (updated_at) WHERE status IN ('succeeded','failed','cancelled')",
      // Log lines are stored a batch per row (message holds the batch); these say how far the edge has the
      // task's output and how many lines it kept, so a retried batch and the per-task cap need no count.
      "ALTER TABLE tasks ADD COLUMN log_seq INTEGER NOT NULL DEFAULT -1",
      "ALTER TABLE tasks ADD COLUMN log_lines INTEGER NOT NULL DEFAULT 0",
      `UPDATE tasks SET
        log_seq = COALESCE((SELECT MAX(agent_seq) FROM task_events e WHERE e.task_id = tasks.id), -1),
        log_lines = (SELECT COUNT(*) FROM task_events e WHERE e.task_id = tasks.id AND e.type = 'log')`,
    ],
  },
  {
    // A task's status events are written by triggers, from the status, its time and the message the move set:
    // every transition is then one statement instead of two (the database server parses and runs each
    // statement of a batch on its own, so statements, not round trips, are most of its work per task).
    id: "0051-status-events-by-trigger",
    statements: [
      "ALTER TABLE tasks ADD COLUMN status_message TEXT",
      `CREATE TRIGGER task_status_event_insert AFTER INSERT ON tasks
        BEGIN INSERT INTO task_events (task_id, at, type, status, message)
          VALUES (NEW.id, NEW.status_at, 'status', NEW.status, COALESCE(NEW.status_message, '')); END`,
      `CREATE TRIGGER task_status_event_update AFTER UPDATE OF status ON tasks
        BEGIN INSERT INTO task_events (task_id, at, type, status, message)
          VALUES (NEW.id, NEW.status_at, 'status', NEW.status, COALESCE(NEW.status_message, '')); END`,
    ],
  },
  {
    // The boot's live progress: every `sam-boot` marker the VM posted as it happened (JSON array, bounded),
    // from which the edge draws the timeline until, and completes it after, the agent's own report.
    id: "0030-node-boot-progress",
    statements: ["ALTER TABLE nodes ADD COLUMN boot_progress TEXT"],
  },
  {
    // A deleted node's events and metrics databases, copied from its agent just before the delete
    // (edge/nodes/archive.ts: bounded in size, dropped after the retention period).
    id: "0031-node-archives",
    statements: [
      `CREATE TABLE node_archives (
        node_id TEXT NOT NULL, kind TEXT NOT NULL, bytes BLOB NOT NULL, size INTEGER NOT NULL, archived_at INTEGER NOT NULL,
        PRIMARY KEY (node_id, kind))`,
    ],
  },
  {
    // The warnings and errors a node's heartbeats carried: its last words, still there when the node died with
    // its events.db (edge/nodes/store.ts keeps the newest per node; they go with the node's row). `task_id` is
    // '' for none so that the unique key, which makes a resent heartbeat update rather than repeat, holds.
    id: "0032-node-problems",
    statements: [
      `CREATE TABLE node_problems (
        id INTEGER PRIMARY KEY, node_id TEXT NOT NULL, at INTEGER NOT NULL, level TEXT NOT NULL, type TEXT NOT NULL,
        message TEXT NOT NULL, task_id TEXT NOT NULL DEFAULT '', repeats INTEGER NOT NULL DEFAULT 0, last_at INTEGER,
        received_at INTEGER NOT NULL)`,
      "CREATE UNIQUE INDEX node_problems_key ON node_problems (node_id, at, type, task_id, message)",
    ],
  },
  {
    // A submission that finds a free slot is inserted already `dispatched` (one statement, not an insert and
    // then the dispatch CAS): the database server prepares every statement it runs, and a statement that
    // writes tasks compiles its triggers too, so the CAS was the dearest part of a submission's work. The task
    // was still queued first, for an instant: the insert's trigger records both moves, in order. The queued
    // message is QUEUED_MESSAGE (edge/tasks/store.ts) written out: a shipped migration's text never changes.
    id: "0033-dispatched-on-insert",
    statements: [
      "DROP TRIGGER task_status_event_insert",
      `CREATE TRIGGER task_status_event_insert AFTER INSERT ON tasks
        BEGIN
          INSERT INTO task_events (task_id, at, type, status, message)
            SELECT NEW.id, NEW.created_at, 'status', 'queued', 'task queued' WHERE NEW.status = 'dispatched';
          INSERT INTO task_events (task_id, at, type, status, message)
            VALUES (NEW.id, NEW.status_at, 'status', NEW.status, COALESCE(NEW.status_message, ''));
        END`,
    ],
  },
  {
    // The inference token of a dispatch is filed by a trigger from the statement that dispatches the task
    // (its hash in `dispatch_token_hash`), not by a statement of its own: a submission on a warm node is then
    // one statement up to the agent call, a dispatch of a queued task two. The row keeps the hash of its last
    // dispatch's token; task_tokens stays the one place tokens are looked up.
    id: "0034-dispatch-token-by-trigger",
    statements: [
      "ALTER TABLE tasks ADD COLUMN dispatch_token_hash TEXT",
      `CREATE TRIGGER task_dispatch_token_insert AFTER INSERT ON tasks
        WHEN NEW.dispatch_token_hash IS NOT NULL AND NEW.status = 'dispatched'
        BEGIN INSERT INTO task_tokens (token_hash, task_id, created_at)
          VALUES (NEW.dispatch_token_hash, NEW.id, NEW.status_at); END`,
      `CREATE TRIGGER task_dispatch_token_update AFTER UPDATE OF dispatch_token_hash ON tasks
        WHEN NEW.dispatch_token_hash IS NOT NULL AND NEW.dispatch_token_hash IS NOT OLD.dispatch_token_hash
        BEGIN INSERT INTO task_tokens (token_hash, task_id, created_at)
          VALUES (NEW.dispatch_token_hash, NEW.id, NEW.updated_at); END`,
    ],
  },
  {
    // Task tokens name their task (edge/auth/authenticate.ts taskToken), so they are filed under it: keyed by
    // task id (which begins with the creation time), then hash, with no rowid. A burst's tokens land at the right
    // edge of one index instead of one random page each of a hash index — on sqld every page a commit touches is
    // written twice (WAL and replication log). The triggers that file them are dropped and made again around
    // the swap (a rename checks every trigger that names the table).
    id: "0035-task-tokens-by-task",
    statements: [
      "DROP TRIGGER task_dispatch_token_insert",
      "DROP TRIGGER task_dispatch_token_update",
      `CREATE TABLE task_tokens_by_task (
        task_id TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (task_id, token_hash)
      ) WITHOUT ROWID`,
      "INSERT INTO task_tokens_by_task (task_id, token_hash, created_at) SELECT task_id, token_hash, created_at FROM task_tokens",
      "DROP TABLE task_tokens",
      "ALTER TABLE task_tokens_by_task RENAME TO task_tokens",
      `CREATE TRIGGER task_dispatch_token_insert AFTER INSERT ON tasks
        WHEN NEW.dispatch_token_hash IS NOT NULL AND NEW.status = 'dispatched'
        BEGIN INSERT INTO task_tokens (task_id, token_hash, created_at)
          VALUES (NEW.id, NEW.dispatch_token_hash, NEW.status_at); END`,
      `CREATE TRIGGER task_dispatch_token_update AFTER UPDATE OF dispatch_token_hash ON tasks
        WHEN NEW.dispatch_token_hash IS NOT NULL AND NEW.dispatch_token_hash IS NOT OLD.dispatch_token_hash
        BEGIN INSERT INTO task_tokens (task_id, token_hash, created_at)
          VALUES (NEW.id, NEW.dispatch_token_hash, NEW.updated_at); END`,
    ],
  },
];

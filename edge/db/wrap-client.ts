/**
 * A client with some of its methods replaced (the remote client's write queue, group commit, tests' slow or
 * failing servers); every other method is the wrapped client's own, bound to it.
 */
import type { Client } from "@libsql/client";

export function wrapClient(client: Client, methods: Partial<Pick<Client, "execute" | "batch" | "close">>): Client {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const own = methods[prop as keyof typeof methods];
      if (own) return own;
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** The frame of every admin page: head, navigation, logout; styles and scripts come from our own origin. */
import type { Child } from "hono/jsx";

export type PageProps = { title: string; base: string; signedIn?: boolean; scripts?: string[]; children?: Child };

export function Layout({ title, base, signedIn = true, scripts = [], children }: PageProps) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${title} · SAM admin`}</title>
        <link rel="stylesheet" href={`${base}/assets/admin.css`} />
        {scripts.map((s) => <script src={`${base}/assets/${s}`} defer></script>)}
      </head>
      <body>
        <header class="top">
          <a class="brand" href={base}>SAM admin</a>
          {signedIn && (
            <nav>
              <a href={`${base}/nodes`}>Nodes</a>
              <a href={`${base}/tasks`}>Tasks</a>
              <form method="post" action={`${base}/logout`}>
                <button type="submit" class="link">Log out</button>
              </form>
            </nav>
          )}
        </header>
        <main>{children}</main>
      </body>
    </html>
  );
}

/** A coloured word for a status or health; the colour is decoration, the word carries the meaning. */
export function Badge({ value }: { value: string }) {
  return <span class={`badge b-${value}`}>{value.replaceAll("_", " ")}</span>;
}

export function ErrorPage({ base, status, message }: { base: string; status: number; message: string }) {
  return (
    <Layout title={`Error ${status}`} base={base}>
      <h1>{status === 404 ? "Not found" : "Something went wrong"}</h1>
      <p class="notice error" role="alert">{message}</p>
      <p>
        <a href={`${base}/nodes`}>Back to the nodes</a>
      </p>
    </Layout>
  );
}

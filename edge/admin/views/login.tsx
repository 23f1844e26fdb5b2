/** The login form: the admin token goes into an HttpOnly cookie, never into a page or a URL. */
import { Layout } from "./layout.tsx";

export function LoginPage({ base, error, next }: { base: string; error: string | null; next: string }) {
  return (
    <Layout title="Log in" base={base} signedIn={false}>
      <section class="login">
        <h1>Log in</h1>
        <p class="muted">
          Paste the admin token (<code>SAM_ADMIN_TOKEN</code>, or the one <code>npm start</code> printed).
        </p>
        {error && <p class="notice error" role="alert" id="login-error">{error}</p>}
        <form method="post" action={`${base}/login`}>
          <input type="hidden" name="next" value={next} />
          <label for="token">Admin token</label>
          <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
          <button type="submit">Log in</button>
        </form>
      </section>
    </Layout>
  );
}

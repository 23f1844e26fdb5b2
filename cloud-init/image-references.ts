/**
 * Every container image a rendered user-data would fetch or run. The slow-boot incident's ghost was a 1–2 GB pre-pull
 * of an image whose feature had been removed; the "no ghosts" test compares this list against the images
 * live features declare, so a leftover pull fails the build instead of slowing every boot.
 */

/** Images referenced by docker/podman/ctr commands (`pull`, `run`, `create`, `image pull`) in `text`. */
/** docker/podman options written as two words (`-e X`), whose value is not the image. */
const OPTIONS_WITH_VALUE = new Set([
  "-e",
  "--env",
  "-v",
  "--volume",
  "-p",
  "--publish",
  "--name",
  "-w",
  "--workdir",
  "--network",
  "--platform",
  "-u",
  "--user",
  "--entrypoint",
  "-l",
  "--label",
  "--mount",
  "--env-file",
  "-h",
  "--hostname",
]);

export function imageReferences(text: string): string[] {
  const found: string[] = [];
  const command = /\b(?:docker|podman|nerdctl|ctr)\s+(?:image\s+)?(?:pull|run|create)\b([^\n;&|)]*)/g;
  for (const match of text.matchAll(command)) {
    const words = (match[1] ?? "").trim().split(/\s+/).filter(Boolean).map((w) => w.replace(/^['"]|['"]$/g, ""));
    // The image is the first word that is neither an option nor an option's value.
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      if (word.startsWith("-")) {
        if (OPTIONS_WITH_VALUE.has(word)) i++;
        continue;
      }
      found.push(word);
      break;
    }
  }
  // Compose files or manifests would carry `image:` keys.
  for (const match of text.matchAll(/^\s*image:\s*['"]?([^\s'"]+)/gm)) found.push(match[1]!);
  return found;
}

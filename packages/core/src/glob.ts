/**
 * A glob on tool refs: `*` is any run of characters but `/`, `**` any run at all, `?` one
 * character; everything else is literal. `mcp://gateway/github/*` covers the github
 * server's tools; `*` alone covers every internal tool (gateway refs contain slashes).
 */
export function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*" && pattern[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

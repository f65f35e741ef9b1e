import type { DescMessage } from "@bufbuild/protobuf";

/** Every message of `roots` and every message reachable from them through fields, sorted by name. */
export function reachableMessages(roots: Iterable<DescMessage>): DescMessage[] {
  const seen = new Map<string, DescMessage>();
  const visit = (m: DescMessage): void => {
    if (seen.has(m.typeName)) return;
    seen.set(m.typeName, m);
    for (const f of m.fields) {
      if (f.message) visit(f.message);
    }
  };
  for (const m of roots) visit(m);
  return [...seen.values()].sort((a, b) => (a.typeName < b.typeName ? -1 : 1));
}

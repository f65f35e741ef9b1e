/**
 * The entries of a protobuf-es map field with message values, every string key treated as data.
 *
 * protobuf-es keeps string-keyed maps in plain objects and writes each entry as `obj[key] = value`
 * (fromJson and fromBinary alike), so the key "__proto__" never becomes an own property: the
 * assignment replaces the object's prototype with the entry's value instead (upstream declined to
 * special-case it, bufbuild/protobuf-es#1451). For message values the entry is still there, as the
 * prototype; this puts it back. Keys such as "constructor" or "toString" are ordinary own properties.
 */
export function mapEntries<V extends object>(map: { readonly [key: string]: V }): [string, V][] {
  const entries = Object.entries(map);
  const proto: unknown = Object.getPrototypeOf(map);
  if (proto !== Object.prototype && proto !== null && typeof proto === "object") entries.push(["__proto__", proto as V]);
  return entries;
}

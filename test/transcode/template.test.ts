import { describe, expect, it } from "vitest";
import { matchTemplate, parseTemplate, splitPath, TemplateSyntaxError } from "../../src/transcode/index.js";

const m = (t: string, p: string) => {
  const b = matchTemplate(parseTemplate(t), splitPath(p)!);
  return b ? Object.fromEntries(b) : undefined;
};

describe("parseTemplate", () => {
  it("parses literals, variables, wildcards and a verb", () => {
    const t = parseTemplate("/v1/{name=shelves/*/books/*}:archive");
    expect(t.verb).toBe("archive");
    expect(t.segments.map((s) => (s.kind === "literal" ? s.value : s.kind))).toEqual(["v1", "shelves", "*", "books", "*"]);
    expect(t.variables).toEqual([{ fieldPath: "name", start: 1, end: 5 }]);
  });

  it("rejects malformed templates", () => {
    for (const bad of ["v1/x", "/v1//x", "/v1/{a", "/v1/{a}}", "/v1/{a{b}}", "/v1/**/x", "/v1/{a}/{a}", "/v1/{9a}", "/v1/x:", "/v1/{a=}", "/v1/** /x"]) {
      expect(() => parseTemplate(bad), bad).toThrow(TemplateSyntaxError);
    }
  });
});

describe("matchTemplate", () => {
  it("binds {field} to one decoded segment", () => {
    expect(m("/v1/users/{id}", "/v1/users/a%2Fb")).toEqual({ id: "a/b" });
    expect(m("/v1/users/{id}", "/v1/users/a/b")).toBeUndefined();
    expect(m("/v1/users/{id}", "/v1/users/")).toBeUndefined();
  });

  it("binds {field=segments/*} and keeps an encoded slash in multi-segment values", () => {
    expect(m("/v1/{name=shelves/*}", "/v1/shelves/x%2Fy")).toEqual({ name: "shelves/x%2Fy" });
    expect(m("/v1/{name=shelves/*}", "/v1/books/x")).toBeUndefined();
  });

  it("matches * and ** without binding, ** for zero or more segments", () => {
    expect(m("/v1/*/x", "/v1/a/x")).toEqual({});
    expect(m("/v1/**", "/v1")).toEqual({});
    expect(m("/v1/{rest=**}", "/v1/a/b/c")).toEqual({ rest: "a/b/c" });
  });

  it("needs the verb when the template has one; a colon is otherwise part of the segment", () => {
    expect(m("/v1/x:run", "/v1/x:run")).toEqual({});
    expect(m("/v1/x:run", "/v1/x")).toBeUndefined();
    expect(m("/v1/{id}", "/v1/a:b")).toEqual({ id: "a:b" });
    expect(m("/v1/{id}:run", "/v1/a:b")).toBeUndefined();
  });
});

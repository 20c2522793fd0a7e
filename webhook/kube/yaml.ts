// The YAML parser behind a module of ours, so that `import()` of it gets the
// named export whether run from source or from the bundle, where a chunk of
// a CommonJS package exports only `default`.
export { parse } from "yaml";

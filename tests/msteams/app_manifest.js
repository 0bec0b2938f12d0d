// Checks a Teams app manifest against Microsoft's own JSON schema for its manifestVersion, as bundled in
// npm `@microsoft/app-manifest` (the validator of the Teams Toolkit). Offline only: a manifest whose schema
// is not in the package is an error here, never a download. Usage: node app_manifest.js manifest.json
// Prints one line of JSON: the list of problems, empty when the manifest is valid.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { AppManifestUtils } = require("@microsoft/app-manifest/build/generated-types");

async function main(file) {
  const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
  const suffix = AppManifestUtils.getLocalSchemaSuffix(String(manifest.$schema || ""));
  const bundled = suffix && path.join(path.dirname(require.resolve("@microsoft/app-manifest/package.json")), "build", suffix);
  if (!bundled || !fs.existsSync(bundled)) {
    return [`no bundled schema for $schema ${JSON.stringify(manifest.$schema)}`];
  }
  const schema = JSON.parse(fs.readFileSync(bundled, "utf8").replace(/\\a/g, "\\u0007").replace(/\\v/g, "\\u000b"));
  return AppManifestUtils.validateAgainstSchema(manifest, schema);
}

main(process.argv[2]).then(
  (problems) => process.stdout.write(JSON.stringify(problems) + "\n"),
  (error) => {
    process.stderr.write(`app_manifest.js: ${error.message}\n`);
    process.exit(2);
  },
);

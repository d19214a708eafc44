// Evaluate a Railway project file with the railway SDK it imports and print the project as JSON.
//   node_modules/.bin/tsx tests/railway_iac.mjs deploy/railway/railway.ts [environment]
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [file, environment = "production"] = process.argv.slice(2);
// The SDK the project file itself resolves (its ESM build, beside the CommonJS one require finds).
const iacDir = dirname(createRequire(resolve(file)).resolve("railway/iac"));
const { createRailwayContext, project } = await import(pathToFileURL(join(iacDir, "index.js")).href);
const program = (await import(pathToFileURL(resolve(file)).href)).default;
const definition = await program(createRailwayContext({ environment }), project);
process.stdout.write(JSON.stringify(definition));

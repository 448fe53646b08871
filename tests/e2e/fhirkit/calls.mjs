// fhir-kit-client's read, search (GET and POST), paging and operation calls against a running
// server; prints what each returned as one JSON object (tests/e2e/test_fhir_kit_client.py
// checks it). Usage: node calls.mjs BASE_URL MODULES_DIR (the folder npm installed into).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [baseUrl, modules] = process.argv.slice(2);
const pkgDir = join(modules, "node_modules", "fhir-kit-client");
const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
const entry = (pkg.exports && pkg.exports["."] && pkg.exports["."].import) || pkg.main;
const { default: DefaultClient, Client: NamedClient } = await import(pathToFileURL(join(pkgDir, entry)).href);
const Client = NamedClient || DefaultClient;

const CPT = "http://www.ama-assn.org/go/cpt";
const SPINE_CT = "https://terminology.cpt-imaging.org/fhir/ValueSet/spine-ct";
const client = new Client({ baseUrl });
const out = { version: pkg.version };

const caps = await client.capabilityStatement();
out.fhirVersion = caps.fhirVersion;
out.read = (await client.read({ resourceType: "ValueSet", id: "spine-ct" })).url;
out.searchGet = (await client.search({ resourceType: "ValueSet", searchParams: { url: SPINE_CT } })).total;
out.searchPost = (await client.search({ resourceType: "ValueSet", searchParams: { url: SPINE_CT },
                                        options: { postSearch: true } })).total;

// paging: one value set a page, following `next` until there is none (at most 100 pages)
let page = await client.search({ resourceType: "ValueSet", searchParams: { _count: 1 } });
out.pagingTotal = page.total;
out.pagedIds = [];
for (let i = 0; page && i < 100; i++) {
  (page.entry || []).forEach((e) => out.pagedIds.push(e.resource.id));
  page = await client.nextPage({ bundle: page });
}

// operations: POST without a body, GET with query input, POST with a Parameters body
out.expandTotal = (await client.operation({ name: "expand", resourceType: "ValueSet", id: "spine-ct" })).expansion.total;
const lookup = await client.operation({ name: "lookup", resourceType: "CodeSystem", method: "GET",
                                        input: { system: CPT, code: "72125" } });
out.lookupDisplay = lookup.parameter.find((p) => p.name === "display").valueString;
const validated = await client.operation({ name: "validate-code", resourceType: "ValueSet", input: {
  resourceType: "Parameters", parameter: [
    { name: "url", valueUri: SPINE_CT }, { name: "system", valueUri: CPT }, { name: "code", valueCode: "72125" }] } });
out.validateResult = validated.parameter.find((p) => p.name === "result").valueBoolean;

// an error: the OperationOutcome reaches the caller with its status
try {
  await client.read({ resourceType: "ValueSet", id: "no-such-value-set" });
  out.missing = null;
} catch (e) {
  const r = e.response || {};
  out.missing = { status: r.status, resourceType: (r.data || e.data || {}).resourceType };
}
console.log(JSON.stringify(out));

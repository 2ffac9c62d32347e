// Validates Kubernetes manifests against the OpenAPI schemas of the npm kubernetes-models
// packages: node k8s_validate.js FILE...  One line per object; exit 1 if any is invalid.
// With --dump first, prints the objects as one JSON array instead.
"use strict";
const fs = require("fs");
const YAML = require("yaml");

let bad = 0;
const args = process.argv.slice(2);
if (args[0] === "--dump") {
  const all = [];
  for (const file of args.slice(1))
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8")))
      all.push({ file, object: doc.toJS() });
  console.log(JSON.stringify(all));
  process.exit(0);
}
for (const file of args) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  docs.forEach((doc, i) => {
    const where = `${file}: document ${i + 1}`;
    if (doc.errors.length) {
      console.log(`${where}: ${doc.errors[0].message.split("\n")[0]}`);
      bad++;
      return;
    }
    const obj = doc.toJS();
    if (obj === null) return;
    const { apiVersion, kind } = obj;
    if (typeof apiVersion !== "string" || typeof kind !== "string") {
      console.log(`${where}: no apiVersion or kind`);
      bad++;
      return;
    }
    let models;
    try {
      models = require(`kubernetes-models/${apiVersion}`);
    } catch (e) {
      console.log(`${where}: unknown apiVersion ${apiVersion}`);
      bad++;
      return;
    }
    const Model = models[kind];
    if (typeof Model !== "function") {
      console.log(`${where}: unknown kind ${kind} in ${apiVersion}`);
      bad++;
      return;
    }
    const name = `${kind} ${(obj.metadata || {}).name}`;
    try {
      new Model(obj).validate();
    } catch (e) {
      console.log(`${where} (${name}): ${e.message}`);
      bad++;
      return;
    }
    console.log(`${where} (${name}): valid`);
  });
}
process.exit(bad ? 1 : 0);

// Microsoft's Kusto parser and semantic analyzer (npm @kusto/language-service-next, the
// JavaScript build of Kusto.Language), run over KQL texts against given table schemas.
// stdin:  {"tables": {"Name": "(Col:type, ...)"}, "queries": {"label": "kql text"}}
// stdout: {"label": {"diagnostics": ["KS142 line 6: ..."], "columns": ["Col:type", ...]}}
require('@kusto/language-service-next/bridge.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.js');

const K = Kusto.Language;
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const tables = new (System.Collections.Generic.List$1(K.Symbols.Symbol).ctor)();
for (const [name, schema] of Object.entries(input.tables)) {
  tables.add(K.Symbols.TableSymbol.From(schema).WithName(name));
}
const globals = K.GlobalState.Default.WithDatabase(new K.Symbols.DatabaseSymbol.$ctor1('workspace', tables, false));
const each = (items) => {
  const list = [];
  System.Linq.Enumerable.from(items).forEach((item) => { list.push(item); });
  return list;
};
const out = {};
for (const [label, text] of Object.entries(input.queries)) {
  const code = K.KustoCode.ParseAndAnalyze(text, globals);
  const diagnostics = each(code.GetDiagnostics()).map(
    (d) => `${d.Code} line ${text.slice(0, d.Start).split('\n').length}: ${d.Message} «${text.substr(d.Start, Math.min(d.Length, 80))}»`);
  const result = code.ResultType;
  const columns = result && result.Columns ? each(result.Columns).map((c) => `${c.Name}:${c.Type.Name}`) : [];
  out[label] = { diagnostics, columns };
}
process.stdout.write(JSON.stringify(out));

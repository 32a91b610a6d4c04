import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import Foundation

extension CDFSyncCommand.PipelineCommand {
    struct TestSQL: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test-sql",
            abstract: "Run a pipeline's custom SQL with a small limit: its columns and types, the mapping's coverage, the first rows mapped.",
            discussion: """
                For a pipeline whose source is `source: {sql: "SELECT …"}`. The query passes the read-only guard \
                first, then runs wrapped as SELECT * FROM (<sql>) AS src LIMIT :n. Shows each column it returns with \
                its type, each column the pipeline reads (mapping, attributes, consent, filters, watermark cursor) \
                found or not, and the rows as the sync would map them. Writes nothing. Exits 1 when a column the \
                pipeline reads is missing, ambiguous or of a type it cannot take.
                """)

        @Argument(help: "The pipeline YAML file.")
        var file: String

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "Rows to read (0-1000; 0 shows the columns only).")
        var limit: Int = 5

        @Flag(help: "Print everything as one JSON object.")
        var json = false

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard (0...1000).contains(limit) else { throw ValidationError("--limit must be 0…1000; got \(limit).") }
        }

        func run() throws {
            try reportingErrors {
                let p = try PipelineLoader.load(path: file)
                let client = interruptibleClient(try connectionSettings(for: p, fallback: connection))
                let test = try CustomSQLTest.run(client: client, pipeline: p, limit: limit)
                if json {
                    print(String(decoding: Self.json(test), as: UTF8.self))
                } else {
                    print(Self.render(test))
                }
                if !test.covered { throw ExitCode(1) }
            }
        }

        static func render(_ t: CustomSQLTest) -> String {
            var lines: [String] = []
            let sql = t.sql.split(separator: "\n", omittingEmptySubsequences: false)
            lines.append("query      " + (sql.first.map(String.init) ?? ""))
            for l in sql.dropFirst() { lines.append("           " + l) }
            for p in t.parameters { lines.append("  :\(p.name) = \(p.value.map { "'\($0)'" } ?? "NULL")") }
            lines.append("statement  \(t.statementID), \(t.values.count) row(s)")
            lines.append("mode       \(t.mode.description)")
            lines.append("columns    \(t.columns.count)")
            let width = min(40, t.columns.map(\.name.count).max() ?? 0)
            for c in t.columns {
                lines.append("  " + c.name + String(repeating: " ", count: max(1, width - c.name.count + 2)) + c.type)
            }
            let found = t.coverage.filter(\.ok).count
            lines.append("coverage   \(found) of \(t.coverage.count) column(s) the pipeline reads are there")
            for c in t.coverage {
                lines.append("  \(c.ok ? "✓" : "✗") \(c.field): " + (c.problem ?? "\(c.column) (\(c.type ?? ""))"))
            }
            if let problem = t.mappingProblem {
                lines.append("rows       not mapped: \(problem)")
                for (i, v) in t.values.enumerated() {
                    lines.append("\(i + 1). " + v.map { $0 ?? "NULL" }.joined(separator: " | "))
                }
            } else {
                lines.append("rows       as the sync would map them")
                for (i, row) in t.rows.enumerated() {
                    let record = row.record.map { String(decoding: $0, as: UTF8.self) } ?? ""
                    switch row.outcome {
                    case .participant(let id): lines.append("\(i + 1). participant \(id)  \(record)")
                    case .event(let id): lines.append("\(i + 1). event \(id)  \(record)")
                    case .notOptedIn(let id): lines.append("\(i + 1). not opted in: \(id) would not be imported  \(record)")
                    case .invalid(let why): lines.append("\(i + 1). invalid, would be skipped: \(why)")
                    }
                }
            }
            return lines.joined(separator: "\n")
        }

        static func json(_ t: CustomSQLTest) -> [UInt8] {
            var w = JSONWriter()
            w.beginObject()
            w.key("sql"); w.string(t.sql)
            w.key("parameters")
            w.beginObject()
            for p in t.parameters { w.key(p.name); w.string(p.value) }
            w.endObject()
            w.key("statement_id"); w.string(t.statementID)
            w.key("mode"); w.string(t.mode.mode.rawValue)
            w.key("mode_reason"); w.string(t.mode.reason)
            w.key("columns")
            w.beginArray()
            for c in t.columns {
                w.beginObject()
                w.key("name"); w.string(c.name)
                w.key("type"); w.string(c.type)
                w.endObject()
            }
            w.endArray()
            w.key("covered"); w.bool(t.covered)
            w.key("coverage")
            w.beginArray()
            for c in t.coverage {
                w.beginObject()
                w.key("field"); w.string(c.field)
                w.key("column"); w.string(c.column)
                w.key("found"); w.bool(c.type != nil)
                w.key("type"); w.string(c.type)
                w.key("problem"); w.string(c.problem)
                w.endObject()
            }
            w.endArray()
            w.key("mapping_problem"); w.string(t.mappingProblem)
            w.key("rows")
            w.beginArray()
            for (i, row) in t.rows.enumerated() {
                w.beginObject()
                switch row.outcome {
                case .participant(let id): w.key("outcome"); w.string("participant"); w.key("external_id"); w.string(id)
                case .notOptedIn(let id): w.key("outcome"); w.string("not_opted_in"); w.key("external_id"); w.string(id)
                case .event(let id): w.key("outcome"); w.string("event"); w.key("event_id"); w.string(id)
                case .invalid(let why): w.key("outcome"); w.string("invalid"); w.key("reason"); w.string(why)
                }
                w.key("record")
                if let r = row.record { w.raw(r) } else { w.null() }
                w.key("values")
                w.beginArray()
                for v in t.values[i] { w.string(v) }
                w.endArray()
                w.endObject()
            }
            if t.mappingProblem != nil {
                for v in t.values {
                    w.beginObject()
                    w.key("outcome"); w.string("not_mapped")
                    w.key("record"); w.null()
                    w.key("values")
                    w.beginArray()
                    for x in v { w.string(x) }
                    w.endArray()
                    w.endObject()
                }
            }
            w.endArray()
            w.endObject()
            return w.bytes
        }
    }
}

import Foundation

/// The column changes of a table's history (`ADD COLUMNS`, `RENAME COLUMN`, `DROP COLUMNS`, `CHANGE COLUMN`, ...),
/// read from `DESCRIBE HISTORY`, so that change data is read across them.
///
/// Delta reads a `table_changes` range in one schema and refuses a range that has a rename, a drop or a type change
/// after its start (`DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE`): such versions are ``breaks``, where ranges
/// are split. A column-mapping table's range is read in the schema of its end version, so a mapped column renamed
/// since is read under the name it had then, and one added since is read as NULL (``reading(_:at:)``).
public struct SchemaHistory: Sendable {
    public enum Change: Sendable, Equatable {
        case added([String])
        case renamed(from: String, to: String)
        case dropped([String])
        /// A change whose effect on columns is not known (a type or comment change, REPLACE COLUMNS, a column
        /// mapping upgrade), by its operation: only a break.
        case other(String)
    }

    /// What became of a column that is no longer in the table.
    public enum Fate: Sendable, Equatable {
        case renamed(to: String, version: Int64)
        case dropped(version: Int64)
    }

    /// Ascending by version.
    public private(set) var changes: [(version: Int64, change: Change)] = []

    /// Operations that may change what change data can be read across; splitting at one that did not is only an
    /// extra statement.
    static let breakingOperations: Set<String> = [
        "RENAME COLUMN", "DROP COLUMNS", "CHANGE COLUMN", "CHANGE COLUMNS", "REPLACE COLUMNS", "REPLACE TABLE",
        "CREATE OR REPLACE TABLE", "REPLACE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT", "UPGRADE PROTOCOL",
    ]

    public init(history: [HistoryEntry]) {
        for e in history.sorted(by: { $0.version < $1.version }) {
            switch e.operation.uppercased() {
            case "ADD COLUMNS":
                let names = Self.jsonArray(e.parameters["columns"]).compactMap { item -> String? in
                    guard let column = (item as? [String: Any])?["column"] as? [String: Any] else { return nil }
                    return (column["name"] as? String).flatMap(Self.topLevelName)
                }
                changes.append((e.version, .added(names)))
            case "ADD COLUMN":
                // As delta-rs records it: `fields`, a JSON array of struct fields.
                let names = Self.jsonArray(e.parameters["fields"]).compactMap {
                    (($0 as? [String: Any])?["name"] as? String).flatMap(Self.topLevelName)
                }
                changes.append((e.version, .added(names)))
            case "RENAME COLUMN":
                if let from = e.parameters["oldColumnPath"].flatMap(Self.topLevelName),
                    let to = e.parameters["newColumnPath"].flatMap(Self.topLevelName)
                {
                    changes.append((e.version, .renamed(from: from, to: to)))
                } else {
                    // A nested field: the top-level columns keep their names.
                    changes.append((e.version, .other(e.operation)))
                }
            case "DROP COLUMNS":
                let names = Self.jsonArray(e.parameters["columns"]).compactMap {
                    ($0 as? String).flatMap(Self.topLevelName)
                }
                changes.append((e.version, .dropped(names)))
            case let op where Self.breakingOperations.contains(op):
                changes.append((e.version, .other(e.operation)))
            case "SET TBLPROPERTIES" where (e.parameters["properties"] ?? "").contains("delta.columnMapping.mode"):
                changes.append((e.version, .other(e.operation)))
            default:
                break
            }
        }
    }

    /// The changes at versions `from...to`, in words: `v9 column email renamed to email_address`.
    public func describe(from: Int64, to: Int64) -> [String] {
        guard from <= to else { return [] }
        return changes.filter { (from...to).contains($0.version) }.map { v, change in
            switch change {
            case .added(let names): return "v\(v) column(s) \(names.joined(separator: ", ")) added"
            case .renamed(let from, let to): return "v\(v) column \(from) renamed to \(to)"
            case .dropped(let names): return "v\(v) column(s) \(names.joined(separator: ", ")) dropped"
            case .other(let op) where op.uppercased() == "SET TBLPROPERTIES":
                return "v\(v) column mapping set (SET TBLPROPERTIES)"
            case .other(let op): return "v\(v) \(op)"
            }
        }
    }

    /// Versions after which change data must be read separately.
    public var breaks: Set<Int64> {
        Set(changes.filter { if case .added = $0.change { return false } else { return true } }.map(\.version))
    }

    /// How each of `columns` (names in the latest schema) is read in the schema of version `version`: under an
    /// older name, or as NULL when it was added later. Columns read under their own name are left out.
    public func reading(_ columns: [String], at version: Int64) -> [String: ColumnRead] {
        var out: [String: ColumnRead] = [:]
        for column in columns {
            // Walk back from the latest schema to `version`: a rename gives the older name, an add means there was
            // no such column before it, and a drop before that add means an older column of the name was there.
            var name = column
            var exists = true
            for (v, change) in changes.reversed() where v > version {
                switch change {
                case .renamed(let from, let to) where exists && Self.same(to, name): name = from
                case .added(let names) where exists && names.contains(where: { Self.same($0, name) }): exists = false
                case .dropped(let names) where !exists && names.contains(where: { Self.same($0, name) }): exists = true
                default: continue
                }
            }
            if !exists {
                out[column] = .absent
            } else if !Self.same(name, column) {
                out[column] = .renamed(name)
            }
        }
        return out
    }

    /// What the history says became of `column`, a name that is not among the table's columns now (`exists`):
    /// renamed to a column that exists, or dropped; nil when it does not say.
    public func fate(of column: String, exists: (String) -> Bool) -> Fate? {
        for (v, change) in changes.reversed() {
            switch change {
            case .renamed(let from, let to) where Self.same(from, column) && exists(to):
                return .renamed(to: to, version: v)
            case .dropped(let names) where names.contains(where: { Self.same($0, column) }):
                return .dropped(version: v)
            default:
                continue
            }
        }
        return nil
    }

    /// Column names compare as Databricks resolves them: case-insensitively.
    public static func same(_ a: String, _ b: String) -> Bool { a.caseInsensitiveCompare(b) == .orderedSame }

    /// A column path as Delta records it (`` `a.b` `` quoted, `a.b` nested) → the top-level column's name, or nil
    /// for a nested field.
    static func topLevelName(_ path: String) -> String? {
        if path.hasPrefix("`") && path.hasSuffix("`") && path.count >= 2 {
            let inner = String(path.dropFirst().dropLast())
            // One quoted part: no unescaped backtick inside.
            guard !inner.replacingOccurrences(of: "``", with: "").contains("`") else { return nil }
            return inner.replacingOccurrences(of: "``", with: "`")
        }
        return path.contains(".") || path.contains("`") ? nil : path
    }

    static func jsonArray(_ text: String?) -> [Any] {
        guard let text, let data = text.data(using: .utf8),
            let a = try? JSONSerialization.jsonObject(with: data) as? [Any]
        else { return [] }
        return a
    }
}

import Foundation

extension TableState {
    /// The schema in effect at version `v`.
    func schema(at v: Int) -> Schema { schemas.last { $0.from <= v } ?? schemas[0] }

    /// `schema` after `alter`, checked as Delta checks the ALTER TABLE it stands for.
    static func altered(_ schema: Schema, by alter: Commit.Alter, commit c: Commit, properties: [String: String],
                        table: String) throws -> Schema {
        func fail(_ text: String) -> WorkspaceError { WorkspaceError("table \(table) commit \(c.version): \(text)") }
        let members = [alter.addColumns != nil, alter.renameColumn != nil, alter.dropColumns != nil,
                       alter.changeColumnType != nil].filter { $0 }.count
        guard members == 1 else {
            throw fail("alter must have exactly one of add_columns, rename_column, drop_columns, change_column_type")
        }
        guard c.operation.uppercased() == alter.operation else {
            throw fail("an alter of this kind is operation \"\(alter.operation)\", not \"\(c.operation)\"")
        }
        guard (c.insert ?? []).isEmpty, (c.update ?? []).isEmpty, (c.delete ?? []).isEmpty else {
            throw fail("a schema change commit carries no rows")
        }
        func index(_ n: String) -> Int? { schema.columns.firstIndex { $0.name.caseInsensitiveCompare(n) == .orderedSame } }
        func existing(_ n: String) throws -> Int {
            guard let i = index(n) else {
                throw fail("no column \(n) (columns: \(schema.columns.map(\.name).joined(separator: ", ")))")
            }
            return i
        }
        let mapping = (properties["delta.columnMapping.mode"] ?? "none").lowercased()
        func needMapping(_ what: String) throws {
            guard mapping == "name" || mapping == "id" else {
                throw fail("\(what) needs column mapping: set delta.columnMapping.mode to name first, as Databricks requires")
            }
        }
        var next = Schema(from: c.version, columns: schema.columns, types: schema.types)
        if let add = alter.addColumns {
            guard !add.isEmpty else { throw fail("add_columns is empty") }
            for col in add {
                guard !next.columns.contains(where: { $0.name.caseInsensitiveCompare(col.name) == .orderedSame }) else {
                    throw fail("column \(col.name) already exists")
                }
                guard col.nullable else { throw fail("an added column must be nullable (\(col.name))") }
                next.columns.append(col)
                next.types.append(try SQLType(parsing: col.type))
            }
        } else if let r = alter.renameColumn {
            try needMapping("RENAME COLUMN")
            let i = try existing(r.from)
            if let j = index(r.to), j != i { throw fail("column \(r.to) already exists") }
            next.columns[i].name = r.to
        } else if let drop = alter.dropColumns {
            try needMapping("DROP COLUMNS")
            let gone = try Set(drop.map(existing))
            guard !gone.isEmpty else { throw fail("drop_columns is empty") }
            guard gone.count < schema.columns.count else { throw fail("cannot drop every column") }
            next.columns = schema.columns.enumerated().filter { !gone.contains($0.offset) }.map(\.element)
            next.types = schema.types.enumerated().filter { !gone.contains($0.offset) }.map(\.element)
        } else if let change = alter.changeColumnType {
            guard properties["delta.enableTypeWidening"]?.lowercased() == "true" else {
                throw fail("changing a column's type needs delta.enableTypeWidening = true")
            }
            let i = try existing(change.name)
            let to = try SQLType(parsing: change.type)
            let widenings: [String: [String]] = [
                "BYTE": ["SHORT", "INT", "LONG"], "SHORT": ["INT", "LONG"], "INT": ["LONG"], "FLOAT": ["DOUBLE"],
            ]
            guard widenings[schema.types[i].name]?.contains(to.name) == true else {
                throw fail("\(schema.types[i].text) → \(to.text) is not a type widening Delta supports")
            }
            next.columns[i].type = to.text
            next.types[i] = to
        }
        return next
    }

    /// Rows of schema `old` as rows of `new`, the schema one ALTER made of it: an added column is NULL, a dropped
    /// one goes, a renamed or retyped one keeps its text.
    static func reshape(_ rows: inout [Row], from old: Schema, to new: Schema) {
        // A rename or a type change keeps every position; an add or a drop keeps the names of the rest.
        guard old.columns.count != new.columns.count, let pick = new.positions(in: old) else { return }
        for r in rows.indices { rows[r] = Schema.project(rows[r], pick) }
    }
}

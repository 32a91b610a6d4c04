import Foundation

/// `<catalog>.information_schema.*` and `system.information_schema.*`, filtered by the caller's grants.
extension Executor {
    static func stringColumns(_ names: [String]) -> [ResultColumn] { names.map { ResultColumn(name: $0, type: .string) } }

    static let catalogsColumns: [ResultColumn] = {
        var c = stringColumns(["catalog_name", "catalog_owner", "comment"])
        c += [ResultColumn(name: "created", type: .timestamp), ResultColumn(name: "created_by", type: .string)]
        c += [ResultColumn(name: "last_altered", type: .timestamp), ResultColumn(name: "last_altered_by", type: .string)]
        return c
    }()

    static let schemataColumns: [ResultColumn] = {
        var c = stringColumns(["catalog_name", "schema_name", "schema_owner", "comment"])
        c += [ResultColumn(name: "created", type: .timestamp), ResultColumn(name: "created_by", type: .string)]
        c += [ResultColumn(name: "last_altered", type: .timestamp), ResultColumn(name: "last_altered_by", type: .string)]
        return c
    }()

    static let tablesColumns: [ResultColumn] = {
        var c = stringColumns([
            "table_catalog", "table_schema", "table_name", "table_type", "is_insertable_into", "commit_action",
            "table_owner", "comment",
        ])
        c += [ResultColumn(name: "created", type: .timestamp), ResultColumn(name: "created_by", type: .string)]
        c += [ResultColumn(name: "last_altered", type: .timestamp), ResultColumn(name: "last_altered_by", type: .string)]
        c += stringColumns(["data_source_format", "storage_path", "storage_sub_directory"])
        return c
    }()

    static let columnsColumns: [ResultColumn] = {
        var c = stringColumns(["table_catalog", "table_schema", "table_name", "column_name"])
        c.append(ResultColumn(name: "ordinal_position", type: .int))
        c += stringColumns(["column_default", "is_nullable", "full_data_type", "data_type"])
        for n in [
            "character_maximum_length", "character_octet_length", "numeric_precision", "numeric_precision_radix",
            "numeric_scale", "datetime_precision",
        ] {
            c.append(ResultColumn(name: n, type: .bigint))
        }
        c += stringColumns(["interval_type"])
        c += [ResultColumn(name: "interval_precision", type: .bigint), ResultColumn(name: "maximum_cardinality", type: .bigint)]
        c += stringColumns(["is_identity", "identity_generation"])
        c += stringColumns(["comment"])
        return c
    }()

    static let owner = "account users"

    func informationSchema(_ name: TableName, offset: Int) throws(SQLError) -> Relation {
        let catalogFilter: String? = name.catalog.lowercased() == "system" ? nil : name.catalog.lowercased()
        if let c = catalogFilter, !catalogs.contains(where: { $0.lowercased() == c }) {
            throw notFound(name, offset: offset)
        }
        let inScope = visibleTables.filter { catalogFilter == nil || $0.name.catalog.lowercased() == catalogFilter }
        func created(_ t: TableState) -> String? { t.versions.first.map { Timestamp.format(millis: $0.timestampMillis) } }
        func altered(_ t: TableState) -> String? { t.versions.last.map { Timestamp.format(millis: $0.timestampMillis) } }
        switch name.table.lowercased() {
        case "catalogs":
            let rows: [Row] = catalogs.filter { catalogFilter == nil || $0.lowercased() == catalogFilter }.map { c in
                let ts = tables.values.filter { $0.name.catalog.lowercased() == c.lowercased() }
                    .compactMap { $0.versions.first?.timestampMillis }.min().map { Timestamp.format(millis: $0) }
                return [c, Self.owner, nil, ts, TableState.defaultUser, ts, TableState.defaultUser]
            }
            return Relation(columns: Self.catalogsColumns, source: .rows(rows))
        case "schemata":
            var rows: [Row] = []
            for c in catalogs where catalogFilter == nil || c.lowercased() == catalogFilter {
                for s in schemas(in: c) {
                    let ts = tables.values.filter {
                        $0.name.catalog.lowercased() == c.lowercased() && $0.name.schema.lowercased() == s.lowercased()
                    }.compactMap { $0.versions.first?.timestampMillis }.min().map { Timestamp.format(millis: $0) }
                    rows.append([c, s, Self.owner, nil, ts, TableState.defaultUser, ts, TableState.defaultUser])
                }
            }
            return Relation(columns: Self.schemataColumns, source: .rows(rows))
        case "tables":
            let rows: [Row] = inScope.map { t in
                let isView = t.isView
                let format: String? = isView ? nil : "DELTA"
                return [
                    t.name.catalog, t.name.schema, t.name.table, t.tableType, isView ? "NO" : "YES", "PRESERVE",
                    Self.owner, t.comment, created(t), TableState.defaultUser, altered(t), TableState.defaultUser, format,
                    isView ? nil : "s3://example-bucket/unity/\(t.name.catalog)/\(t.name.schema)/\(t.name.table)", nil,
                ]
            }
            return Relation(columns: Self.tablesColumns, source: .rows(rows))
        case "columns":
            var rows: [Row] = []
            for t in inScope {
                let cols: [(String, SQLType, Bool)]
                if t.isView {
                    cols = ((try? viewColumns(t)) ?? []).map { ($0.name, $0.type, true) }
                } else {
                    cols = zip(t.columns, t.columnTypes).map { ($0.name, $1, $0.nullable) }
                }
                for (i, (cname, type, nullable)) in cols.enumerated() {
                    let precision: String? =
                        type.name == "DECIMAL" ? type.precision.map(String.init)
                        : (type.name == "INT" ? "10" : (type.name == "LONG" ? "19" : (type.name == "DOUBLE" ? "53" : nil)))
                    let radix: String? = type.name == "DECIMAL" || type.isIntegral ? "10" : (type.name == "DOUBLE" ? "2" : nil)
                    let scale: String? = type.name == "DECIMAL" ? type.scale.map(String.init) : (type.isIntegral ? "0" : nil)
                    rows.append([
                        t.name.catalog, t.name.schema, t.name.table, cname, String(i + 1), nil, nullable ? "YES" : "NO",
                        type.text.lowercased(), type.name == "LONG" ? "LONG" : type.name, nil, nil, precision, radix, scale,
                        type.isTimestamp ? "6" : nil, type.intervalType, nil, nil, "NO", nil, nil,
                    ])
                }
            }
            return Relation(columns: Self.columnsColumns, source: .rows(rows))
        default:
            throw notFound(name, offset: offset)
        }
    }

    /// A view's output columns, found by running its select list with `LIMIT 0`.
    func viewColumns(_ t: TableState) throws(SQLError) -> [ResultColumn] {
        guard let def = t.view, let src = try? TableName(parsing: def.source) else { return [] }
        let text = "SELECT " + def.select.joined(separator: ", ") + " FROM " + src.quoted + " LIMIT 0"
        guard case .select(let s) = try Parser.parse(text) else { return [] }
        var inner = self
        inner.bypass = true
        let srcTable = try inner.lookup(src, offset: 0, checkGrants: false)
        let rel = inner.tableRelation(srcTable, version: srcTable.latestVersion)
        return try inner.project(s, over: rel).columns
    }
}

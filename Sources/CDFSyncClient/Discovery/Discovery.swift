import CDFSyncCore
import Foundation

/// A column as `information_schema.columns` shows it.
public struct DiscoveredColumn: Sendable, Equatable {
    public var name: String
    /// `full_data_type`, e.g. `decimal(10,2)`.
    public var type: String
    public var nullable: Bool
    /// `ordinal_position`: 1-based.
    public var position: Int

    public init(name: String, type: String, nullable: Bool, position: Int) {
        self.name = name
        self.type = type
        self.nullable = nullable
        self.position = position
    }
}

/// A table or view the identity may see.
public struct DiscoveredTable: Sendable, Equatable {
    public var name: String
    /// `table_type`: `MANAGED`, `EXTERNAL`, `VIEW`, `MATERIALIZED_VIEW`, `STREAMING_TABLE`, ...
    public var type: String
    /// `data_source_format` (`DELTA`, `PARQUET`, ...); nil for views.
    public var format: String?
    /// Whether `delta.enableChangeDataFeed` is `true`; nil when not a Delta table or not readable.
    public var changeDataFeed: Bool?
    /// The newest version from `DESCRIBE HISTORY ... LIMIT 1`; nil when not a Delta table or not readable.
    public var latestVersion: Int64?
    /// Columns in ordinal order.
    public var columns: [DiscoveredColumn]

    public init(name: String, type: String, format: String?, changeDataFeed: Bool?, latestVersion: Int64?,
                columns: [DiscoveredColumn]) {
        self.name = name
        self.type = type
        self.format = format
        self.changeDataFeed = changeDataFeed
        self.latestVersion = latestVersion
        self.columns = columns
    }

    /// Whether the table is Delta (not a view), so versions and change data may exist.
    public var isDelta: Bool { format?.uppercased() == "DELTA" && !Discovery.viewTypes.contains(type.uppercased()) }

    /// The column called `name` (case-insensitive, as Databricks resolves column names).
    public func column(named name: String) -> DiscoveredColumn? {
        let want = name.lowercased()
        return columns.first { $0.name.lowercased() == want }
    }
}

public struct DiscoveredSchema: Sendable, Equatable {
    public var name: String
    public var tables: [DiscoveredTable]
    public init(name: String, tables: [DiscoveredTable]) {
        self.name = name
        self.tables = tables
    }
}

public struct DiscoveredCatalog: Sendable, Equatable {
    public var name: String
    public var schemas: [DiscoveredSchema]
    public init(name: String, schemas: [DiscoveredSchema]) {
        self.name = name
        self.schemas = schemas
    }
}

/// What one identity can see in a workspace: catalogs → schemas → tables and views → columns.
public struct DiscoveryResult: Sendable, Equatable {
    /// The version tag of the JSON form (docs/discovery.md).
    public static let format = "cdfsync-discovery/1"

    public var catalogs: [DiscoveredCatalog]

    public init(catalogs: [DiscoveredCatalog]) { self.catalogs = catalogs }

    /// The table `catalog.schema.table` (names matched case-insensitively), or nil when it is not visible.
    public func table(_ name: QualifiedName) -> DiscoveredTable? {
        catalogs.first { $0.name.lowercased() == name.catalog.lowercased() }?
            .schemas.first { $0.name.lowercased() == name.schema.lowercased() }?
            .tables.first { $0.name.lowercased() == name.table.lowercased() }
    }

    /// Every visible table with its qualified name, in tree order.
    public var allTables: [(name: QualifiedName, table: DiscoveredTable)] {
        catalogs.flatMap { c in
            c.schemas.flatMap { s in
                s.tables.map { (QualifiedName(catalog: c.name, schema: s.name, table: $0.name), $0) }
            }
        }
    }

    /// The stable JSON form, `{"format":"cdfsync-discovery/1","catalogs":[...]}` (docs/discovery.md).
    public func json() -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("format"); w.string(Self.format)
        w.key("catalogs")
        w.beginArray()
        for c in catalogs {
            w.beginObject()
            w.key("name"); w.string(c.name)
            w.key("schemas")
            w.beginArray()
            for s in c.schemas {
                w.beginObject()
                w.key("name"); w.string(s.name)
                w.key("tables")
                w.beginArray()
                for t in s.tables {
                    w.beginObject()
                    w.key("name"); w.string(t.name)
                    w.key("type"); w.string(t.type)
                    w.key("format"); w.string(t.format)
                    w.key("change_data_feed")
                    if let cdf = t.changeDataFeed { w.bool(cdf) } else { w.null() }
                    w.key("latest_version")
                    if let v = t.latestVersion { w.int(v) } else { w.null() }
                    w.key("columns")
                    w.beginArray()
                    for col in t.columns {
                        w.beginObject()
                        w.key("name"); w.string(col.name)
                        w.key("type"); w.string(col.type)
                        w.key("nullable"); w.bool(col.nullable)
                        w.key("position"); w.int(Int64(col.position))
                        w.endObject()
                    }
                    w.endArray()
                    w.endObject()
                }
                w.endArray()
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return w.bytes
    }

    /// The human form: an indented tree, one line per catalog, schema, table and column.
    public func renderTree() -> String {
        var out: [String] = []
        if catalogs.isEmpty { out.append("(no catalogs visible to this identity)") }
        for c in catalogs {
            out.append("\(c.name)/")
            if c.schemas.isEmpty { out.append("  (no schemas visible)") }
            for s in c.schemas {
                out.append("  \(s.name)/")
                if s.tables.isEmpty { out.append("    (no tables visible)") }
                for t in s.tables {
                    var facts = [t.type]
                    if let f = t.format { facts.append(f) }
                    if t.isDelta {
                        switch t.changeDataFeed {
                        case true?: facts.append("CDF on")
                        case false?: facts.append("CDF off")
                        case nil: facts.append("CDF unknown")
                        }
                        facts.append(t.latestVersion.map { "version \($0)" } ?? "version unknown")
                    }
                    out.append("    \(t.name)  [\(facts.joined(separator: ", "))]")
                    let width = t.columns.map(\.name.count).max() ?? 0
                    for col in t.columns {
                        let pad = String(repeating: " ", count: max(0, width - col.name.count))
                        out.append("      \(col.name)\(pad)  \(col.type)\(col.nullable ? "" : " NOT NULL")")
                    }
                }
            }
        }
        return out.joined(separator: "\n")
    }
}

/// Lists what an identity may see, through `system.information_schema` (already filtered by privilege on the
/// server), plus change data feed status and the latest version of each Delta table.
///
/// Every identifier in the SQL is backtick-quoted and every user-supplied value is a named parameter
/// (`:cat`, `:sch`); the only literal is the constant property key.
public enum Discovery {
    static let viewTypes: Set<String> = ["VIEW", "METRIC_VIEW"]
    static let infoSchema = "\(SQL.quoteIdentifier("system")).\(SQL.quoteIdentifier("information_schema"))"

    /// Runs the discovery.
    ///
    /// - Parameters:
    ///   - client: a client for the warehouse (its default catalog and schema do not matter: names are qualified).
    ///   - catalog: only this catalog (matched as Unity Catalog stores names: lower case).
    ///   - schema: only schemas of this name.
    ///   - details: also read CDF status and latest version of each Delta table (two statements per table).
    /// - Returns: the tree, sorted by name at every level; `information_schema` schemas are left out.
    /// - Throws: `DatabricksError` from the catalog, schema, table and column queries. Per-table detail queries
    ///   that fail on permissions or a missing table leave `changeDataFeed`/`latestVersion` nil instead.
    public static func run(client: StatementClient, catalog: String? = nil, schema: String? = nil, details: Bool = true)
        throws -> DiscoveryResult
    {
        let cat = catalog.map { $0.lowercased() }
        let sch = schema.map { $0.lowercased() }
        func filter(catalogColumn: String, schemaColumn: String?) -> (String, [StatementParameter]) {
            var conds: [String] = []
            var params: [StatementParameter] = []
            if let cat {
                conds.append("\(SQL.quoteIdentifier(catalogColumn)) = :cat")
                params.append(StatementParameter(name: "cat", value: cat))
            }
            if let sch, let schemaColumn {
                conds.append("\(SQL.quoteIdentifier(schemaColumn)) = :sch")
                params.append(StatementParameter(name: "sch", value: sch))
            }
            return (conds.isEmpty ? "" : " WHERE " + conds.joined(separator: " AND "), params)
        }
        func cols(_ names: [String]) -> String { names.map(SQL.quoteIdentifier).joined(separator: ", ") }

        // Catalogs.
        let (cw, cp) = filter(catalogColumn: "catalog_name", schemaColumn: nil)
        let catalogRows = try client.collect(Statement(
            sql: "SELECT \(cols(["catalog_name"])) FROM \(infoSchema).\(SQL.quoteIdentifier("catalogs"))\(cw)"
                + " ORDER BY \(cols(["catalog_name"]))",
            parameters: cp))
        var tree: [String: [String: [DiscoveredTable]]] = [:]
        var catalogNames: [String: String] = [:]
        for r in catalogRows.rows.indices {
            guard let name = catalogRows.value(r, "catalog_name") else { continue }
            tree[name] = tree[name] ?? [:]
            catalogNames[name.lowercased()] = name
        }

        // Schemas.
        let (sw, sp) = filter(catalogColumn: "catalog_name", schemaColumn: "schema_name")
        let schemaRows = try client.collect(Statement(
            sql: "SELECT \(cols(["catalog_name", "schema_name"])) FROM \(infoSchema).\(SQL.quoteIdentifier("schemata"))\(sw)"
                + " ORDER BY \(cols(["catalog_name", "schema_name"]))",
            parameters: sp))
        for r in schemaRows.rows.indices {
            guard let c = schemaRows.value(r, "catalog_name"), let s = schemaRows.value(r, "schema_name"),
                s.lowercased() != "information_schema"
            else { continue }
            let cname = catalogNames[c.lowercased()] ?? c
            tree[cname, default: [:]][s] = tree[cname]?[s] ?? []
        }

        // Tables.
        let (tw, tp) = filter(catalogColumn: "table_catalog", schemaColumn: "table_schema")
        let tableRows = try client.collect(Statement(
            sql: "SELECT \(cols(["table_catalog", "table_schema", "table_name", "table_type", "data_source_format"]))"
                + " FROM \(infoSchema).\(SQL.quoteIdentifier("tables"))\(tw)"
                + " ORDER BY \(cols(["table_catalog", "table_schema", "table_name"]))",
            parameters: tp))

        // Columns.
        let columnRows = try client.collect(Statement(
            sql: "SELECT \(cols(["table_catalog", "table_schema", "table_name", "column_name", "ordinal_position", "full_data_type", "is_nullable"]))"
                + " FROM \(infoSchema).\(SQL.quoteIdentifier("columns"))\(tw)"
                + " ORDER BY \(cols(["table_catalog", "table_schema", "table_name", "ordinal_position"]))",
            parameters: tp))
        var columnsByTable: [QualifiedName: [DiscoveredColumn]] = [:]
        for r in columnRows.rows.indices {
            guard let c = columnRows.value(r, "table_catalog"), let s = columnRows.value(r, "table_schema"),
                let t = columnRows.value(r, "table_name"), let name = columnRows.value(r, "column_name")
            else { continue }
            let key = QualifiedName(catalog: c.lowercased(), schema: s.lowercased(), table: t.lowercased())
            let position = columnRows.value(r, "ordinal_position").flatMap { Int($0) } ?? 0
            let type = columnRows.value(r, "full_data_type") ?? ""
            let nullable = (columnRows.value(r, "is_nullable") ?? "YES").uppercased() != "NO"
            columnsByTable[key, default: []].append(
                DiscoveredColumn(name: name, type: type, nullable: nullable, position: position))
        }

        for r in tableRows.rows.indices {
            guard let c = tableRows.value(r, "table_catalog"), let s = tableRows.value(r, "table_schema"),
                let t = tableRows.value(r, "table_name"), s.lowercased() != "information_schema"
            else { continue }
            let key = QualifiedName(catalog: c.lowercased(), schema: s.lowercased(), table: t.lowercased())
            var table = DiscoveredTable(
                name: t, type: tableRows.value(r, "table_type") ?? "UNKNOWN",
                format: tableRows.value(r, "data_source_format"), changeDataFeed: nil, latestVersion: nil,
                columns: (columnsByTable[key] ?? []).sorted { $0.position < $1.position })
            if details && table.isDelta {
                let qualified = QualifiedName(catalog: c, schema: s, table: t)
                table.changeDataFeed = try tolerant { try changeDataFeedEnabled(client: client, table: qualified) }
                table.latestVersion = try tolerant { try latestVersion(client: client, table: qualified) }
            }
            let cname = catalogNames[c.lowercased()] ?? c
            tree[cname, default: [:]][s, default: []].append(table)
        }

        if sch != nil { tree = tree.filter { !$0.value.isEmpty } }
        let catalogs = tree.keys.sorted().map { c in
            DiscoveredCatalog(name: c, schemas: tree[c]!.keys.sorted().map { s in
                DiscoveredSchema(name: s, tables: tree[c]![s]!.sorted { $0.name < $1.name })
            })
        }
        return DiscoveryResult(catalogs: catalogs)
    }

    /// `SHOW TBLPROPERTIES t ('delta.enableChangeDataFeed')`: true when the value is `true` (any case). A missing
    /// property comes back as a row whose value is a sentence, which reads as false (spec §8.2).
    public static func changeDataFeedEnabled(client: StatementClient, table: QualifiedName) throws -> Bool {
        let rows = try client.collect(Statement(
            sql: "SHOW TBLPROPERTIES \(table.quoted) (\(SQL.stringLiteral("delta.enableChangeDataFeed")))"))
        guard !rows.rows.isEmpty else { return false }
        let value = rows.value(0, "value") ?? (rows.rows[0].count > 1 ? rows.rows[0][1] : nil)
        return value?.lowercased() == "true"
    }

    /// `DESCRIBE HISTORY t LIMIT 1`: the `version` of the newest commit.
    public static func latestVersion(client: StatementClient, table: QualifiedName) throws -> Int64? {
        let rows = try client.collect(Statement(sql: SQL.latestVersion(of: table)))
        guard !rows.rows.isEmpty else { return nil }
        return rows.value(0, "version").flatMap { Int64($0) }
    }

    /// Errors that mean "this identity cannot read the detail" become nil; anything else (network, auth) throws.
    static func tolerant<T>(_ body: () throws -> T?) throws -> T? {
        do {
            return try body()
        } catch let e as DatabricksError
            where [.permissionDenied, .tableNotFound, .changeDataUnavailable, .statementFailed].contains(e.category)
        {
            return nil
        }
    }
}

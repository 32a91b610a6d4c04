import Foundation

/// Unity Catalog privileges of one principal, from its `grants`.
struct Access: Sendable {
    /// Lower-cased securable name → upper-cased privileges.
    var grants: [String: Set<String>]

    init(_ principal: Principal) {
        var g: [String: Set<String>] = [:]
        for grant in principal.grants {
            let key = ((try? TableName.splitParts(grant.on)) ?? [grant.on]).map { $0.lowercased() }.joined(separator: ".")
            g[key, default: []].formUnion(grant.privileges.map { $0.uppercased() })
        }
        grants = g
    }

    private func has(_ privilege: String, on key: String) -> Bool {
        guard let p = grants[key] else { return false }
        return p.contains(privilege) || p.contains("ALL PRIVILEGES")
    }

    func useCatalog(_ catalog: String) -> Bool { has("USE CATALOG", on: catalog.lowercased()) }

    func useSchema(_ catalog: String, _ schema: String) -> Bool {
        let c = catalog.lowercased()
        return has("USE SCHEMA", on: c) || has("USE SCHEMA", on: "\(c).\(schema.lowercased())")
    }

    /// A privilege on a table, inherited from its schema and catalog.
    func tablePrivilege(_ privilege: String, _ name: TableName) -> Bool {
        let c = name.catalog.lowercased()
        let s = "\(c).\(name.schema.lowercased())"
        return has(privilege, on: c) || has(privilege, on: s) || has(privilege, on: name.key)
    }

    /// Whether the table shows up in information_schema and SHOW TABLES.
    func canSee(_ name: TableName) -> Bool {
        useCatalog(name.catalog) && useSchema(name.catalog, name.schema)
            && ["SELECT", "MODIFY", "BROWSE", "READ VOLUME", "APPLY TAG"].contains { tablePrivilege($0, name) }
    }

    /// Whether the catalog shows up in SHOW CATALOGS / information_schema.catalogs.
    func canSeeCatalog(_ catalog: String) -> Bool {
        let c = catalog.lowercased()
        return useCatalog(catalog) || has("BROWSE", on: c)
    }

    func canSeeSchema(_ catalog: String, _ schema: String) -> Bool {
        let key = "\(catalog.lowercased()).\(schema.lowercased())"
        return useCatalog(catalog)
            && (useSchema(catalog, schema) || grants.keys.contains { $0 == key || $0.hasPrefix(key + ".") })
    }

    /// Throws the error Databricks gives when a table cannot be read.
    func requireSelect(_ name: TableName, isView: Bool) throws(SQLError) {
        func denied(_ priv: String, _ kind: String, _ obj: String) -> SQLError {
            SQLError("INSUFFICIENT_PERMISSIONS", "42501", "Insufficient privileges: User does not have \(priv) on \(kind) '\(obj)'.")
        }
        guard useCatalog(name.catalog) else { throw denied("USE CATALOG", "Catalog", name.catalog) }
        guard useSchema(name.catalog, name.schema) else {
            throw denied("USE SCHEMA", "Schema", "\(name.catalog).\(name.schema)")
        }
        guard tablePrivilege("SELECT", name) else {
            throw denied("SELECT", isView ? "View" : "Table", name.description)
        }
    }
}

print("dbsql-sim")

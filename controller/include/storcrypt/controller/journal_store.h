// storcrypt controller: the daemon's journal::Store in its SQLite state
// database (component "journal": tables journal_ops and journal_steps).
// synchronous=FULL: every record is durable when the call returns.
#pragma once

#include <memory>

#include "storcrypt/common/result.h"
#include "storcrypt/controller/db.h"
#include "storcrypt/journal/journal.h"

namespace storcrypt::controller {

/// Creates the tables on first use. The store keeps a reference to `db`.
Result<std::unique_ptr<journal::Store>> make_db_journal_store(Db& db);

/// The daemon's journal on `db` (make_db_journal_store + journal::Journal).
Result<std::unique_ptr<journal::Journal>> open_db_journal(Db& db);

}  // namespace storcrypt::controller

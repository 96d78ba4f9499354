// storcrypt: the admin command. It talks only to storcryptd's API.
#include "storcrypt/common/secret.h"
#include "storcrypt/controller/client.h"

int main(int argc, char** argv) {
  storcrypt::controller::ClientContext cc;
  int rc = storcrypt::controller::run_cli(argc, argv, cc, STORCRYPT_VERSION);
  // Short secrets (a passphrase fits std::string's inline buffer) may be left
  // in the frames the commands used.
  storcrypt::wipe_stack();
  return rc;
}

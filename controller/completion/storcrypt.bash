# bash completion for storcrypt(8)
# Install to /usr/share/bash-completion/completions/storcrypt.

_storcrypt() {
    local cur prev words cword
    _init_completion || return

    local globals="--socket --json --timeout --help --version"
    local nouns="system event cert truststore volume keymedia policy key address ipsec drive ear ike"
    nouns+=" kmip-client keyserver keyprovider"
    local noun="" verb="" sub="" i w
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        case $w in
            --socket|--timeout) ((i++)); continue ;;
            -*) continue ;;
        esac
        if [[ -z $noun ]]; then noun=$w; elif [[ -z $verb ]]; then verb=$w; elif [[ -z $sub ]]; then sub=$w; fi
    done

    case $prev in
        --socket) _filedir; return ;;
        --timeout|--limit|--code|--days|--cn|--common-name|--country|--state|--locality|--org|--organization|--unit|--email|--dns|--ip|--message)
            return ;;
        --key-id|--key-provider|--name|--local|--remote|--protocol|--local-port|--remote-port|--icmp-type|--icmp-code|--spi|--local-endpoint|--remote-endpoint|--integrity-key|--encryption-key|--position)
            return ;;
        --direction) COMPREPLY=($(compgen -W "inbound outbound" -- "$cur")); return ;;
        --action) COMPREPLY=($(compgen -W "BYPASS DISCARD PROTECT" -- "$cur")); return ;;
        --service) COMPREPLY=($(compgen -W "AH ESP-INTEGRITY ESP-CONFIDENTIALITY ESP-INTEGRITY-CONFIDENTIALITY" -- "$cur")); return ;;
        --mode) COMPREPLY=($(compgen -W "transport tunnel" -- "$cur")); return ;;
        --integrity-algorithm) COMPREPLY=($(compgen -W "HMAC-SHA1-96 HMAC-SHA-256-128 HMAC-SHA-512-256" -- "$cur")); return ;;
        --encryption-algorithm) COMPREPLY=($(compgen -W "AES-CBC-128 AES-CBC-256 AES-GCM-256" -- "$cur")); return ;;
        --algorithm) COMPREPLY=($(compgen -W "HMAC-SHA1-96 HMAC-SHA-256-128 HMAC-SHA-512-256 AES-CBC-128 AES-CBC-256 AES-GCM-256" -- "$cur")); return ;;
        --kdf) COMPREPLY=($(compgen -W "scrypt pbkdf2" -- "$cur")); return ;;
        --hex-file|--ascii-file|--passphrase-file) _filedir; return ;;
        --severity) COMPREPLY=($(compgen -W "info warning error critical" -- "$cur")); return ;;
        --key-type) COMPREPLY=($(compgen -W "ec-p384 rsa-3072 rsa-4096" -- "$cur")); return ;;
        --use) COMPREPLY=($(compgen -W "ipsec restapi kmip ipsec,kmip ipsec,restapi,kmip" -- "$cur")); return ;;
        --out) _filedir; return ;;
        --local-ts|--remote-ts|--id|--remote-id) return ;;
        --ike-proposal) COMPREPLY=($(compgen -W "aes256-sha384-ecp384,aes256gcm16-prfsha384-ecp384 aes256gcm16-prfsha384-ecp384" -- "$cur")); return ;;
        --esp-proposal) COMPREPLY=($(compgen -W "aes256gcm16-ecp384 aes256gcm16" -- "$cur")); return ;;
        --start) COMPREPLY=($(compgen -W "none start" -- "$cur")); return ;;
        --dpd-action) COMPREPLY=($(compgen -W "none restart" -- "$cur")); return ;;
        --ca-cert|--client-cert) _filedir; return ;;
        --hostname|--port|--provider) return ;;
    esac

    if [[ -z $noun ]]; then
        COMPREPLY=($(compgen -W "$nouns $globals" -- "$cur"))
        return
    fi
    local verbs=""
    case $noun in
        system) verbs="status doctor" ;;
        event) verbs="list show fix test" ;;
        cert) verbs="create csr install show export-root" ;;
        truststore) verbs="add list remove" ;;
        volume) verbs="create open close list show rekey erase adopt resume" ;;
        keymedia) verbs="list status init" ;;
        policy) verbs="list show add insert modify move clone remove import export test validate commit revert" ;;
        key) verbs="list create delete export import" ;;
        address) verbs="add list remove" ;;
        ipsec) verbs="enable disable default status" ;;
        drive) verbs="list show lock unlock erase revert" ;;
        ear) verbs="enable disable status migrate rekey" ;;
        ike) verbs="peer list show" ;;
        kmip-client) verbs="create-keypair csr" ;;
        keyserver) verbs="create modify delete show list test" ;;
        keyprovider) verbs="create delete show list test add-server remove-server" ;;
    esac
    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "$verbs --help" -- "$cur"))
        return
    fi
    local opts="--help --json"
    local fields="--name --direction --local --remote --protocol --local-port --remote-port --icmp-type --icmp-code --action --service --mode --spi --local-endpoint --remote-endpoint --integrity-algorithm --integrity-key --encryption-algorithm --encryption-key"
    case "$noun $verb" in
        "event list") opts+=" --unfixed --severity --code --limit" ;;
        "event test") opts+=" --message" ;;
        "cert create") opts+=" --cn --common-name --country --state --locality --org --organization --unit --email --dns --ip --key-type --days --self-signed" ;;
        "cert csr") opts+=" --cn --common-name --country --state --locality --org --organization --unit --email --dns --ip --key-type --out" ;;
        "cert export-root") opts+=" --out" ;;
        "volume create") opts+=" --key-id --key-provider --unencrypted --force"
            if [[ $cur != -* ]]; then _filedir; return; fi ;;
        "volume adopt")
            if [[ $cur != -* ]]; then _filedir; return; fi ;;
        "volume erase") opts+=" --yes" ;;
        "keymedia init")
            if [[ $cur != -* ]]; then _filedir -d; return; fi ;;
        "policy list") opts+=" --committed" ;;
        "policy show") opts+=" --committed" ;;
        "policy add") opts+=" $fields --position" ;;
        "policy insert"|"policy modify") opts+=" $fields" ;;
        "policy import") opts+=" --swap --append"
            if [[ $cur != -* ]]; then _filedir; return; fi ;;
        "policy export") opts+=" --committed"
            if [[ $cur != -* ]]; then _filedir; return; fi ;;
        "policy test") opts+=" --direction --protocol --local --remote --local-port --icmp-type --remote-port --icmp-code" ;;
        "address list") opts+=" --committed" ;;
        "key create") opts+=" --algorithm --hex-file --ascii-file --replace" ;;
        "key export") opts+=" --name --passphrase-file --kdf"
            if [[ $cur != -* ]]; then _filedir; return; fi ;;
        "key import") opts+=" --passphrase-file --replace"
            if [[ $cur != -* ]]; then _filedir; return; fi ;;
        "ipsec default")
            if [[ $cur != -* ]]; then COMPREPLY=($(compgen -W "IPv6Only BYPASS DENY DENYALL" -- "$cur")); return; fi ;;
        "ike peer")
            if [[ -z $sub ]]; then COMPREPLY=($(compgen -W "add remove show list up down --help" -- "$cur")); return; fi
            [[ $sub == add ]] && opts+=" --remote --local --local-ts --remote-ts --id --remote-id --ike-proposal --esp-proposal --start --dpd-action" ;;
        "drive erase") opts+=" --yes" ;;
        "drive revert") opts+=" --psid --yes" ;;
        "ear enable") opts+=" --key-provider" ;;
        "ear migrate") opts+=" --key-provider" ;;
        "kmip-client create-keypair") opts+=" --cn --common-name --org --organization --unit --locality --state --country --email" ;;
        "kmip-client csr") opts+=" --out" ;;
        "keyserver create"|"keyserver modify") opts+=" --name --hostname --port --ca-cert --client-cert" ;;
        "keyserver list") opts+=" --provider" ;;
        "keyprovider create") opts+=" --name" ;;
        "cert install"|"truststore add")
            [[ $verb == add ]] && opts+=" --use"
            if [[ $cur != -* ]]; then _filedir; return; fi ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
} && complete -F _storcrypt storcrypt

# bash completion for storcrypt(8)
# Install to /usr/share/bash-completion/completions/storcrypt.

_storcrypt() {
    local cur prev words cword
    _init_completion || return

    local globals="--socket --json --timeout --help --version"
    local nouns="system event cert truststore"
    local noun="" verb="" i w
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        case $w in
            --socket|--timeout) ((i++)); continue ;;
            -*) continue ;;
        esac
        if [[ -z $noun ]]; then noun=$w; elif [[ -z $verb ]]; then verb=$w; fi
    done

    case $prev in
        --socket) _filedir; return ;;
        --timeout|--limit|--code|--days|--cn|--common-name|--country|--state|--locality|--org|--organization|--unit|--email|--dns|--ip|--message)
            return ;;
        --severity) COMPREPLY=($(compgen -W "info warning error critical" -- "$cur")); return ;;
        --key-type) COMPREPLY=($(compgen -W "ec-p384 rsa-3072 rsa-4096" -- "$cur")); return ;;
        --use) COMPREPLY=($(compgen -W "ipsec restapi kmip ipsec,kmip ipsec,restapi,kmip" -- "$cur")); return ;;
        --out) _filedir; return ;;
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
    esac
    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "$verbs --help" -- "$cur"))
        return
    fi
    local opts="--help --json"
    case "$noun $verb" in
        "event list") opts+=" --unfixed --severity --code --limit" ;;
        "event test") opts+=" --message" ;;
        "cert create") opts+=" --cn --country --state --locality --org --unit --email --dns --ip --key-type --days --self-signed" ;;
        "cert csr") opts+=" --cn --country --state --locality --org --unit --email --dns --ip --key-type --out" ;;
        "cert export-root") opts+=" --out" ;;
        "cert install"|"truststore add")
            [[ $verb == add ]] && opts+=" --use"
            if [[ $cur != -* ]]; then _filedir; return; fi ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
} && complete -F _storcrypt storcrypt

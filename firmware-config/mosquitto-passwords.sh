#!/bin/sh
# Creates the Mosquitto password file for the gateway and one login per unit.
#
#   mosquitto-passwords.sh PASSWORD_FILE UNITS_FILE
#
# UNITS_FILE has one line per unit: the unit (the tenant's MQTT user name) and its password,
# separated by a space. The gateway's password comes from CARETAKER_MQTT_PASSWORD; put the
# same value in gateway.toml's [mqtt] password. The file is written with mode 0600.
set -eu
if [ "$#" -ne 2 ]; then
    echo "usage: $0 PASSWORD_FILE UNITS_FILE" >&2
    exit 2
fi
passwd_file=$1
units_file=$2
if [ -z "${CARETAKER_MQTT_PASSWORD:-}" ]; then
    echo "error: set CARETAKER_MQTT_PASSWORD to the gateway's MQTT password" >&2
    exit 2
fi
umask 077
: > "$passwd_file"
mosquitto_passwd -b "$passwd_file" caretaker "$CARETAKER_MQTT_PASSWORD"
while read -r unit password; do
    case "$unit" in
        ''|'#'*) continue ;;
    esac
    if [ "$unit" = caretaker ]; then
        echo "error: unit name 'caretaker' is the gateway's user name; rename the unit" >&2
        exit 1
    fi
    mosquitto_passwd -b "$passwd_file" "$unit" "$password"
done < "$units_file"
echo "wrote $passwd_file"

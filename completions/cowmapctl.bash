# SPDX-License-Identifier: GPL-2.0
# bash completion for cowmapctl(8).  The commands and options are those of
# tools/cowmapctl/ (main.c's cmds[], each command's getopt_long() table);
# tools/host-check checks them against "cowmapctl --help".  Installed as
# $(PREFIX)/share/bash-completion/completions/cowmapctl.  Needs only bash.

_cowmapctl()
{
	local cur=${COMP_WORDS[COMP_CWORD]}
	local prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmds='map dump merge status discard list monitor trim version run help'
	local sub="" i opts="" files="" dirs="" args=""

	COMPREPLY=()
	# The command is the first word after "cowmapctl" that is no option.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) sub=${COMP_WORDS[i]}; break ;;
		esac
	done

	case $sub in
	'')
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W '--json --help --version' -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$cmds" -- "$cur")
		fi
		return 0 ;;
	help)
		[ "$i" = $((COMP_CWORD - 1)) ] &&
			mapfile -t COMPREPLY < <(compgen -W "${cmds% help}" -- "$cur")
		return 0 ;;
	map)
		opts='--write --truncate --log --keep --json --help'
		files='-l -L --log'; args='-w --write -t --truncate' ;;
	dump)
		opts='--log --json --raw --output --full --verbose --ioctl --session --help'
		files='-l --log -o --output'; args='--session' ;;
	merge)
		opts='--source --log --all --in-place --output --dry-run --skip
			--force --salvage --force-identity --session --into
			--fsync --trim --json --verbose --help'
		files='-s --source -l --log -o --output --into'
		dirs='-a --all'; args='--session' ;;
	status)
		opts='--json --ioctl --session --help'; args='--session' ;;
	list)
		opts='--json --stats --output --raw --noheadings --help'
		args='-o --output'
		# -o [+]COL,COL...: the names under "Columns:" of "list --help".
		if [[ $prev == -o || $prev == --output ]]; then
			local pre=${cur%"${cur##*[,+]}"} names
			names=$("${COMP_WORDS[0]}" list --help 2>/dev/null |
				sed -n '/^Columns:/,$s/^  \([A-Z_]*\) .*/\1/p')
			mapfile -t COMPREPLY < <(compgen -P "$pre" -W "$names" -- "${cur##*[,+]}")
			return 0
		fi ;;
	version)
		opts='--json --help' ;;
	monitor)
		opts='--json --count --session --timestamp --quiet --help'
		args='-c --count --session' ;;
	run)
		# After "--" come PROGRAM and its arguments: commands, then files.
		for ((i = 2; i < COMP_CWORD; i++)); do
			if [ "${COMP_WORDS[i]}" = -- ]; then
				if [ "$i" = $((COMP_CWORD - 1)) ]; then
					mapfile -t COMPREPLY < <(compgen -c -- "$cur")
				else
					compopt -o filenames 2>/dev/null
					mapfile -t COMPREPLY < <(compgen -f -- "$cur")
				fi
				return 0
			fi
		done
		opts='--file --dir --log --keep --merge --discard --help'
		files='-f --file'; dirs='-d --dir -l --log' ;;
	discard|trim)
		opts='--json --session --help'; args='--session' ;;
	*)
		return 0 ;;
	esac

	# An option's argument: a file, a directory, or nothing to offer.
	local what=""
	if [ -z "$prev" ]; then
		:
	elif [[ " $files " == *" $prev "* ]]; then
		what="file"
	elif [[ " $dirs " == *" $prev "* ]]; then
		what="dir"
	elif [[ " $args " == *" $prev "* ]]; then
		what="none"
	fi

	case $what in
	file)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return 0 ;;
	dir)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return 0 ;;
	none)
		return 0 ;;
	esac

	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
	elif [ "$sub" = map ]; then
		# map FILE
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi
	return 0
}
complete -F _cowmapctl cowmapctl

/*
 * SSH keys (kind SshKey): algorithm, rotation schedule and the current
 * key's fingerprint as the agents report it. Private keys stay in the
 * vault; nothing here reads one.
 */
Ext.define('OrbitLab.panel.SshKeys', {
    extend: 'OrbitLab.grid.Objects',
    alias: 'widget.orbitlabSshKeys',

    path: '/ssh-keys',
    stateful: true,
    stateId: 'grid-orbitlab-sshkeys',

    kindColumns: [
        { part: 'spec', key: 'algorithm', header: gettext('Algorithm'), config: { width: 90 } },
        { part: 'spec', key: 'rotate_every', header: gettext('Rotate every'), config: { width: 100 } },
        { part: 'outputs', key: 'fingerprint', header: gettext('Fingerprint'), config: { flex: 1 } },
        { part: 'outputs', key: 'created', header: gettext('Created'), config: { width: 160 } },
        { part: 'outputs', key: 'next_rotation', header: gettext('Next rotation'), config: { width: 160 } },
    ],
});

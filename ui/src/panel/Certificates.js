/*
 * Certificates (kind Certificate): CAs and leaf certificates OrbitLab
 * issues and renews, with their expiry as the agents report it. Private
 * keys stay in the vault; nothing here reads one.
 */
Ext.define('OrbitLab.panel.Certificates', {
    extend: 'OrbitLab.grid.Objects',
    alias: 'widget.orbitlabCertificates',

    path: '/certificates',
    stateful: true,
    stateId: 'grid-orbitlab-certificates',

    kindColumns: [
        { part: 'spec', key: 'role', header: gettext('Role'), config: { width: 120 } },
        { part: 'spec', key: 'issuer', header: gettext('Issuer'), config: { width: 120 } },
        {
            header: gettext('Subject'),
            flex: 1,
            renderer: (v, m, rec) =>
                Ext.htmlEncode(rec.get('spec').common_name || (rec.get('spec').dns_names || []).join(', ')),
        },
        { part: 'outputs', key: 'serial', header: gettext('Serial'), config: { width: 150 } },
        {
            header: gettext('Expires'),
            width: 190,
            renderer: (v, m, rec) => OrbitLab.Utils.render_expiry(rec.get('outputs').not_after),
        },
    ],
});

/*
 * OrbitLab overview: the Backplane (the Cluster manifest and its status),
 * each node's agent (version, heartbeat, last pass, prerequisites, vault),
 * the cluster's quorum as Proxmox reports it (/cluster/status), and what
 * this node's agent would do next (GET /plan). Refreshed every few seconds.
 */
Ext.define('OrbitLab.panel.Overview', {
    extend: 'Ext.panel.Panel',
    alias: 'widget.orbitlabOverview',

    scrollable: true,
    bodyPadding: 5,
    layout: { type: 'vbox', align: 'stretch' },
    defaults: { margin: '0 0 10 0' },

    initComponent: function () {
        let me = this;

        let cluster = Ext.create('OrbitLab.data.UpdateStore', { path: '/cluster' });
        let nodes = Ext.create('OrbitLab.data.UpdateStore', { path: '/nodes', model: 'orbitlab-node' });
        let plan = Ext.create('OrbitLab.data.UpdateStore', {
            path: '/plan',
            interval: 10000,
            fields: ['object', 'step', 'blocked'],
        });
        // Quorum, from Proxmox itself.
        let pveStatus = Ext.create('Proxmox.data.UpdateStore', {
            interval: 5000,
            proxy: { type: 'proxmox', url: '/api2/json/cluster/status' },
            fields: ['type', 'name', 'quorate', 'nodes'],
        });
        let stores = [cluster, nodes, plan, pveStatus];

        let backplane = Ext.create('Ext.Component', {
            itemId: 'backplane',
            padding: 5,
            html: gettext('Loading...'),
        });
        let showBackplane = function () {
            let rec = cluster.getAt(0);
            let quorum = pveStatus.findRecord('type', 'cluster');
            let rows = [];
            if (!rec) {
                rows.push([gettext('Backplane'), gettext('not initialised (orbitlab init)')]);
            } else {
                let spec = rec.get('spec') || {};
                let backplane = spec.backplane || spec;
                rows.push([gettext('Status'), OrbitLab.Utils.render_phase(rec.get('phase'), {}, rec)]);
                Ext.Object.each(backplane, function (key, value) {
                    if (!Ext.isObject(value) && !Ext.isArray(value)) {
                        rows.push([Ext.htmlEncode(key), Ext.htmlEncode(String(value))]);
                    }
                });
                if (rec.get('message')) {
                    rows.push([gettext('Message'), Ext.htmlEncode(rec.get('message'))]);
                }
            }
            if (quorum) {
                rows.push([
                    gettext('Quorum'),
                    quorum.get('quorate')
                        ? '<i class="fa fa-check-circle good"></i> ' + gettext('Yes')
                        : '<i class="fa fa-times-circle critical"></i> ' + gettext('No'),
                ]);
            }
            backplane.update(
                '<table class="orbitlab-kv">' +
                    rows.map((r) => '<tr><td style="padding-right: 20px"><b>' + r[0] + '</b></td><td>' + r[1] + '</td></tr>').join('') +
                    '</table>',
            );
        };
        me.mon(cluster, 'load', showBackplane);
        me.mon(pveStatus, 'load', showBackplane);

        Ext.apply(me, {
            items: [
                {
                    xtype: 'panel',
                    title: gettext('Backplane'),
                    items: backplane,
                },
                {
                    xtype: 'grid',
                    title: gettext('Agents'),
                    itemId: 'agents',
                    store: nodes,
                    columns: [
                        { header: gettext('Node'), dataIndex: 'name', width: 100, renderer: Ext.htmlEncode },
                        {
                            header: gettext('Agent'),
                            dataIndex: 'agent',
                            width: 120,
                            renderer: function (value, meta, rec) {
                                let icon = value === 'alive' ? 'fa-check-circle good' : 'fa-times-circle critical';
                                let owner = rec.get('owner') ? ' (' + gettext('owner') + ')' : '';
                                return '<i class="fa ' + icon + '"></i> ' + Ext.htmlEncode(value) + owner;
                            },
                        },
                        { header: gettext('Version'), dataIndex: 'version', width: 80, renderer: Ext.htmlEncode },
                        {
                            header: gettext('Heartbeat'),
                            dataIndex: 'heartbeat_age_s',
                            width: 110,
                            renderer: (v) => (v === undefined ? '-' : Ext.htmlEncode(v + ' s ' + gettext('ago'))),
                        },
                        { header: gettext('Last pass'), dataIndex: 'last_pass', flex: 1, renderer: Ext.htmlEncode },
                        { header: gettext('Prerequisites'), dataIndex: 'prerequisites', width: 130, renderer: Ext.htmlEncode },
                        { header: gettext('Vault'), dataIndex: 'vault', width: 90, renderer: Ext.htmlEncode },
                    ],
                },
                {
                    xtype: 'grid',
                    title: gettext('Next steps of this node\'s agent (plan)'),
                    itemId: 'plan',
                    store: plan,
                    emptyText: gettext('Nothing to do: the cluster matches the manifests.'),
                    deferEmptyText: false,
                    columns: [
                        { header: gettext('Object'), dataIndex: 'object', width: 200, renderer: Ext.htmlEncode },
                        {
                            header: gettext('Step'),
                            flex: 1,
                            renderer: (v, m, rec) =>
                                rec.get('blocked')
                                    ? '<i class="fa fa-ban warning"></i> ' + Ext.htmlEncode(rec.get('blocked'))
                                    : Ext.htmlEncode(rec.get('step')),
                        },
                    ],
                },
            ],
        });

        me.callParent();
        OrbitLab.Utils.monStoreErrors(me.down('#agents'), nodes);
        OrbitLab.Utils.monStoreErrors(me.down('#plan'), plan);
        OrbitLab.Utils.refreshWhileShown(me, stores);
    },
});

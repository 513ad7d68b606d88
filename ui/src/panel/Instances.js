/*
 * Instances (kind Lxc): node, VMID, address, FQDN, power and drift as the
 * agents report them, refreshed every few seconds; create / edit / remove
 * and start / stop (the manifest's state: OrbitLab keeps it so).
 * Write buttons need Sys.Modify and VM.Allocate on /.
 */
Ext.define('OrbitLab.panel.Instances', {
    extend: 'Ext.grid.Panel',
    alias: 'widget.orbitlabInstances',

    stateful: true,
    stateId: 'grid-orbitlab-instances',
    viewConfig: { trackOver: false },

    initComponent: function () {
        let me = this;

        let rstore = Ext.create('OrbitLab.data.UpdateStore', { path: '/lxc' });
        let store = Ext.create('Proxmox.data.DiffStore', {
            rstore: rstore,
            sorters: 'name',
            autoDestroyRstore: true,
        });
        let reload = () => rstore.load();
        let selected = () => me.getSelection()[0];
        let status = (rec, key) => rec.get('outputs')[key];

        let edit = function (object) {
            Ext.create('OrbitLab.window.InstanceEdit', {
                autoShow: true,
                object: object,
                canApply: OrbitLab.Utils.may('instances'),
                applied: reload,
            });
        };

        // Start or stop: the manifest's state, previewed like any change.
        let power = function (state) {
            let rec = selected();
            if (!rec) {
                return;
            }
            let manifest = OrbitLab.Utils.manifest('Lxc', {}, OrbitLab.Utils.objectOf(rec));
            if (state === 'running') {
                delete manifest.spec.state;
            } else {
                manifest.spec.state = state;
            }
            Ext.create('OrbitLab.window.PlanPreview', {
                autoShow: true,
                manifests: [manifest],
                canApply: OrbitLab.Utils.may('instances'),
                applied: reload,
            });
        };

        Ext.apply(me, {
            store: store,
            tbar: [
                {
                    text: gettext('Create'),
                    itemId: 'create',
                    hidden: true,
                    orbitlabPrivilege: 'instances',
                    handler: () => edit(undefined),
                },
                {
                    xtype: 'proxmoxButton',
                    text: gettext('Edit'),
                    itemId: 'edit',
                    hidden: true,
                    orbitlabPrivilege: 'instances',
                    disabled: true,
                    handler: () => edit(OrbitLab.Utils.objectOf(selected())),
                },
                {
                    xtype: 'proxmoxButton',
                    text: gettext('Start'),
                    itemId: 'start',
                    iconCls: 'fa fa-play',
                    hidden: true,
                    orbitlabPrivilege: 'instances',
                    disabled: true,
                    enableFn: (rec) => rec.get('spec').state === 'stopped',
                    handler: () => power('running'),
                },
                {
                    xtype: 'proxmoxButton',
                    text: gettext('Stop'),
                    itemId: 'stop',
                    iconCls: 'fa fa-stop',
                    hidden: true,
                    orbitlabPrivilege: 'instances',
                    disabled: true,
                    enableFn: (rec) => rec.get('spec').state !== 'stopped',
                    handler: () => power('stopped'),
                },
                OrbitLab.Utils.removeButton({
                    privilege: 'instances',
                    collection: 'lxc',
                    message: gettext('Remove instance {0}? Its container is destroyed.'),
                    waitMsgTarget: me,
                    done: reload,
                }),
            ],
            columns: [
                { header: gettext('Name'), dataIndex: 'name', width: 130, renderer: Ext.htmlEncode },
                {
                    header: gettext('Status'),
                    dataIndex: 'phase',
                    width: 110,
                    renderer: OrbitLab.Utils.render_phase,
                },
                {
                    header: gettext('Sector'),
                    width: 100,
                    renderer: (v, m, rec) => Ext.htmlEncode(rec.get('spec').sector),
                },
                {
                    header: gettext('Node'),
                    width: 80,
                    renderer: (v, m, rec) => Ext.htmlEncode(status(rec, 'node') || '-'),
                },
                {
                    header: 'VMID',
                    width: 70,
                    renderer: (v, m, rec) => Ext.htmlEncode(status(rec, 'vmid') || '-'),
                },
                {
                    header: gettext('Address'),
                    width: 120,
                    renderer: (v, m, rec) => Ext.htmlEncode(status(rec, 'address') || '-'),
                },
                {
                    header: 'FQDN',
                    width: 210,
                    renderer: (v, m, rec) => Ext.htmlEncode(status(rec, 'fqdn') || '-'),
                },
                {
                    header: gettext('Power'),
                    width: 90,
                    renderer: function (v, m, rec) {
                        let power = status(rec, 'power');
                        let icon = power === 'running' ? 'fa-play good' : 'fa-stop';
                        return power ? '<i class="fa ' + icon + '"></i> ' + Ext.htmlEncode(power) : '-';
                    },
                },
                {
                    // What OrbitLab is putting back or still making: the
                    // Progressing condition's message; none when Ready.
                    header: gettext('Drift'),
                    width: 160,
                    renderer: function (v, m, rec) {
                        if (rec.get('phase') !== 'Progressing') {
                            return rec.get('phase') === 'Ready' ? gettext('none') : '-';
                        }
                        m.tdAttr = 'data-qtip="' + Ext.htmlEncode(Ext.htmlEncode(rec.get('message'))) + '"';
                        return '<i class="fa fa-exclamation-triangle warning"></i> ' + Ext.htmlEncode(rec.get('message'));
                    },
                },
                {
                    header: gettext('Message'),
                    dataIndex: 'message',
                    flex: 1,
                    minWidth: 150,
                    renderer: Ext.htmlEncode,
                },
            ],
            listeners: {
                itemdblclick: function (view, rec) {
                    if (OrbitLab.Utils.may('instances')) {
                        edit(OrbitLab.Utils.objectOf(rec));
                    }
                },
            },
        });

        me.callParent();
        OrbitLab.Utils.monStoreErrors(me, rstore);
        OrbitLab.Utils.applyPrivileges(me);
        OrbitLab.Utils.refreshWhileShown(me, [rstore], [store]);
    },
});

/*
 * The OrbitLab entry of the Datacenter view: an override of PVE.dc.Config
 * (Proxmox has no UI plugin interface). PVE.panel.Config builds its menu
 * from the items handed to insertNodes() inside initComponent, so the
 * panel's items are added there, after the SDN group, as a group of its
 * own like SDN: OrbitLab (overview) with its views below. Users without
 * Sys.Audit on / see no entry (the agent would refuse them anyway).
 */
// The panel's menu entries: OrbitLab (the overview) and its views below.
Ext.define('OrbitLab.dc.Menu', {
    singleton: true,
    items: function () {
        let view = (xtype, title, iconCls, itemId) => ({
            xtype: xtype,
            title: title,
            iconCls: iconCls,
            itemId: itemId,
            groups: ['orbitlab'],
        });
        return [
            {
                xtype: 'orbitlabOverview',
                title: 'OrbitLab',
                iconCls: 'fa fa-dot-circle-o',
                itemId: 'orbitlab',
                expandedOnInit: true,
            },
            view('orbitlabSectors', gettext('Sectors'), 'fa fa-sitemap', 'orbitlab-sectors'),
            view('orbitlabInstances', gettext('Instances'), 'fa fa-cube', 'orbitlab-instances'),
            view('orbitlabAppliances', gettext('Appliances'), 'fa fa-archive', 'orbitlab-appliances'),
            view('orbitlabSecrets', gettext('Secrets'), 'fa fa-key', 'orbitlab-secrets'),
            view('orbitlabCertificates', gettext('Certificates'), 'fa fa-certificate', 'orbitlab-certificates'),
            view('orbitlabSshKeys', gettext('SSH Keys'), 'fa fa-terminal', 'orbitlab-sshkeys'),
        ];
    },
});

Ext.define('OrbitLab.dc.Config', {
    override: 'PVE.dc.Config',

    insertNodes: function (items) {
        let me = this;
        let caps = Ext.state.Manager.get('GuiCap') || {};
        if (!me.orbitlabInserted && caps.dc && caps.dc['Sys.Audit']) {
            me.orbitlabInserted = true;
            let at = items.length;
            for (let i = items.length - 1; i >= 0; i--) {
                if (items[i].itemId === 'sdn' || (items[i].groups || []).indexOf('sdn') !== -1) {
                    at = i + 1;
                    break;
                }
            }
            items.splice(at, 0, ...OrbitLab.dc.Menu.items());
        }
        me.callParent([items]);
    },
});
